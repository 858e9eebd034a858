package upstash

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/kafkarpc/kafkarpc/internal/testutil"
)

// countingHandler counts the "retrying request" log lines.
type countingHandler struct {
	n *atomic.Int64
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "upstash: retrying request" {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

func newCountingLogger(n *atomic.Int64) *slog.Logger { return slog.New(countingHandler{n}) }

// logBuffer collects everything logged at Debug and above, as text.
type logBuffer struct{ testutil.SyncBuffer }

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
