package service

import (
	"fmt"
	"log/slog"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/internal/settings"
)

// NewEngine loads the engine with a command's resolved settings: models,
// library, threads and image limits. The app tier and the overflow Lambda load
// it the same way.
func NewEngine(v *settings.Values, log *slog.Logger) (*engine.Engine, error) {
	eng, err := engine.New(engine.Options{ModelDir: v.String(settings.Models), LibraryPath: v.String(settings.ORTLib),
		IntraOpThreads: v.Int(settings.ORTThreads), MaxBytes: int64(v.Int(settings.MaxBody)), MaxPixels: int64(v.Int(settings.MaxPixels)),
		MaxScans: v.Int(settings.MaxJPEGScans), Logger: log.With("component", "engine")})
	if err != nil {
		return nil, fmt.Errorf("%w (set -models/-ort-lib or FACEFLEET_MODELS/FACEFLEET_ORT_LIB; `make models` builds them)", err)
	}
	return eng, nil
}
