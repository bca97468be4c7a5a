package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
)

// NewClient returns a franz-go client for the seed brokers that logs
// through log (nil: nowhere), with opts applied after the seeds and the
// logger (so an option may override either). It connects in plaintext
// without authentication: the platform's components make their clients
// with ClientOptions.NewClient, which adds SASL and TLS (conn.go).
//
// franz-go's Info level reports every connection, metadata refresh and
// rebalance step, so its two lower levels are shifted down: its warnings
// and errors stay warnings and errors, its Info becomes slog Debug and its
// Debug becomes LevelKafkaDebug, below slog Debug. A logger at Info, the
// platform's default, thus shows only what needs attention; one at Debug
// also shows the client's Info.
func NewClient(brokers []string, log *slog.Logger, opts ...kgo.Opt) (*kgo.Client, error) {
	all := make([]kgo.Opt, 0, len(opts)+2)
	all = append(all, kgo.SeedBrokers(brokers...), kgo.WithLogger(Logger(log)))
	all = append(all, opts...)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		return nil, fmt.Errorf("cannot create Kafka client for %s: %w", strings.Join(brokers, ","), err)
	}
	return cl, nil
}

// Logger adapts log for kgo.WithLogger with the levels NewClient uses;
// nil logs nowhere.
func Logger(log *slog.Logger) kgo.Logger {
	if log == nil {
		log = slog.New(slog.DiscardHandler) // kslog then reports kgo.LogLevelNone
	}
	return kslog.New(slog.New(quieter{log.Handler()}))
}

// quieter shifts franz-go's chatty levels down (see NewClient).
type quieter struct{ h slog.Handler }

// LevelKafkaDebug is the slog level of franz-go's Debug records.
const LevelKafkaDebug = slog.LevelDebug - 4

func shift(l slog.Level) slog.Level {
	switch {
	case l >= slog.LevelWarn:
		return l
	case l >= slog.LevelInfo:
		return slog.LevelDebug
	default:
		return LevelKafkaDebug
	}
}

func (q quieter) Enabled(ctx context.Context, l slog.Level) bool { return q.h.Enabled(ctx, shift(l)) }

func (q quieter) Handle(ctx context.Context, r slog.Record) error {
	r.Level = shift(r.Level)
	return q.h.Handle(ctx, r)
}

func (q quieter) WithAttrs(as []slog.Attr) slog.Handler { return quieter{q.h.WithAttrs(as)} }
func (q quieter) WithGroup(g string) slog.Handler       { return quieter{q.h.WithGroup(g)} }
