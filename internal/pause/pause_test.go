package pause

import (
	"context"
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	if err := For(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("a full wait: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := For(ctx, time.Hour); err != context.Canceled || time.Since(start) > time.Second {
		t.Fatalf("a cancelled wait: %v after %v", err, time.Since(start))
	}
	if err := For(ctx, 0); err != context.Canceled {
		t.Fatalf("no wait on a cancelled context: %v", err)
	}
}
