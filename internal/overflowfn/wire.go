package overflowfn

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/facefleet/facefleet/internal/service"
	"github.com/facefleet/facefleet/internal/settings"
)

// Wire builds the handler from the function's environment, as the app tier
// builds its workers (service.OpenAWS, service.NewEngine, service.NewWorker):
// the queues and buckets are checked and the engine loaded once, in the
// function's init, and reused by every invocation of the execution
// environment. The returned Closer releases the engine.
func Wire(ctx context.Context, getenv func(string) string, log *slog.Logger) (*Handler, io.Closer, error) {
	v, err := settings.FromEnv(settings.Overflow, taskRootDefaults(getenv))
	if err != nil {
		return nil, nil, fmt.Errorf("overflow: %w", err)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(v.String(settings.LogLevel))) // declared OneOf: always parses
	log = slog.New(levelHandler{log.Handler(), level})
	b, _, err := service.OpenAWS(ctx, v)
	if err != nil {
		return nil, nil, fmt.Errorf("overflow: %w", err)
	}
	if b.Fleet == nil {
		return nil, nil, fmt.Errorf("overflow: FACEFLEET_APP_TAG_KEY and FACEFLEET_APP_TAG_VALUE are required (it stops when an app-tier instance runs)")
	}
	eng, err := service.NewEngine(v, log)
	if err != nil {
		return nil, nil, fmt.Errorf("overflow: %w", err)
	}
	t := service.TiersFromSettings(v)
	t.Analyzer, t.Logger = eng, log
	h, err := New(Options{
		NewWorker: func(id string) (Worker, error) { return service.NewWorker(b, t, id) },
		Fleet:     b.Fleet, Margin: v.Duration(settings.OverflowMargin), WorkerWait: v.Duration(settings.WorkerWait),
		FleetCheck: v.Duration(settings.OverflowFleetCheck), EC2Warmup: v.Duration(settings.OverflowEC2Warmup), Logger: log,
		Markers: b.Outputs,
	})
	if err != nil {
		eng.Close()
		return nil, nil, err
	}
	return h, closer(eng.Close), nil
}

type closer func() error

func (c closer) Close() error { return c() }

// levelHandler drops records below its level.
type levelHandler struct {
	slog.Handler
	level slog.Level
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h levelHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return levelHandler{h.Handler.WithAttrs(a), h.level}
}

func (h levelHandler) WithGroup(n string) slog.Handler {
	return levelHandler{h.Handler.WithGroup(n), h.level}
}
