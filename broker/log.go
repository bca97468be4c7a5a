package broker

import (
	"context"
	"log/slog"
)

// minLevel drops records below min. mochi logs every ended connection at
// Warn (thousands at a shutdown); the hook logs and counts what matters.
type minLevel struct {
	min slog.Level
	h   slog.Handler
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}
func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{m.min, m.h.WithAttrs(as)}
}
func (m minLevel) WithGroup(g string) slog.Handler { return minLevel{m.min, m.h.WithGroup(g)} }
