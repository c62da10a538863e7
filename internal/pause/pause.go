// Package pause waits for a while unless a context ends first: the one
// cancellable sleep of the worker, the scaler Lambda, the local fleet and the
// engine double.
package pause

import (
	"context"
	"time"
)

// For waits d, or until ctx is done; it returns ctx's error in that case and
// nil after a full wait. d <= 0 returns at once (ctx's error, if any).
func For(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
