package kafka

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// records keeps the slog records it is given, at or above min.
type records struct {
	min   slog.Level
	mu    sync.Mutex
	attrs []slog.Attr
	got   []slog.Record
}

func (h *records) Enabled(_ context.Context, l slog.Level) bool { return l >= h.min }

func (h *records) Handle(_ context.Context, r slog.Record) error {
	r.AddAttrs(h.attrs...)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, r.Clone())
	return nil
}

func (h *records) WithAttrs(as []slog.Attr) slog.Handler {
	// One shared record list is all the test needs.
	h.mu.Lock()
	defer h.mu.Unlock()
	h.attrs = append(h.attrs, as...)
	return h
}
func (h *records) WithGroup(string) slog.Handler { return h }

func (h *records) all() []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]slog.Record(nil), h.got...)
}

// closedAddr returns a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// pingClosed makes a client of NewClient try a closed port for at most a
// second and returns what it logged.
func pingClosed(t *testing.T, h *records) {
	t.Helper()
	addr := closedAddr(t)
	cl, err := NewClient([]string{addr}, slog.New(h).With("component", "test"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err == nil {
		t.Fatalf("ping of closed port %s succeeded", addr)
	}
}

func TestNewClient_LogsWarningsThroughSlog(t *testing.T) {
	h := &records{min: slog.LevelInfo}
	pingClosed(t, h)
	got := h.all()
	var warned bool
	for _, r := range got {
		if r.Level < slog.LevelWarn {
			t.Errorf("franz-go logged %q at %s through an Info logger; want only warnings and errors", r.Message, r.Level)
		}
		if r.Level == slog.LevelWarn && strings.Contains(r.Message, "unable to open connection to broker") {
			warned = true
			var component bool
			r.Attrs(func(a slog.Attr) bool {
				component = component || (a.Key == "component" && a.Value.String() == "test")
				return true
			})
			if !component {
				t.Errorf("warning %q lost the logger's attributes", r.Message)
			}
		}
	}
	if !warned {
		t.Fatalf("no warning about the closed port among %d records", len(got))
	}
}

// franz-go's own Debug records lie below slog Debug, so --log-level debug
// does not drown in them; a handler that asks for them gets them.
func TestNewClient_KafkaDebugBelowSlogDebug(t *testing.T) {
	h := &records{min: slog.LevelDebug}
	pingClosed(t, h)
	for _, r := range h.all() {
		if r.Level < slog.LevelDebug {
			t.Errorf("record %q at %s below the handler's level", r.Message, r.Level)
		}
	}
	h = &records{min: LevelKafkaDebug}
	pingClosed(t, h)
	var kdebug int
	for _, r := range h.all() {
		if r.Level == LevelKafkaDebug {
			kdebug++
		}
	}
	if kdebug == 0 {
		t.Fatalf("a handler at LevelKafkaDebug got none of franz-go's Debug records")
	}
}

func TestNewClient_NilLoggerAndBadSeed(t *testing.T) {
	cl, err := NewClient([]string{closedAddr(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if _, err := NewClient([]string{"127.0.0.1:notaport"}, nil); err == nil ||
		!strings.Contains(err.Error(), "cannot create Kafka client for 127.0.0.1:notaport") {
		t.Fatalf("unexpected error for a bad seed; got %v", err)
	}
}

func TestShift(t *testing.T) {
	for _, tt := range []struct{ in, want slog.Level }{
		{slog.LevelError, slog.LevelError},
		{slog.LevelWarn, slog.LevelWarn},
		{slog.LevelInfo, slog.LevelDebug},
		{slog.LevelDebug, LevelKafkaDebug},
	} {
		if got := shift(tt.in); got != tt.want {
			t.Errorf("shift(%s) = %s; want %s", tt.in, got, tt.want)
		}
	}
}
