package e2ekit

import (
	"context"
	"net"
	"os"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/apikeys"
	"github.com/facefleet/facefleet/internal/service"
)

// Serve runs svc on a free 127.0.0.1 port until the returned stop is called
// (also at the test's cleanup; calling it twice is harmless) and returns its
// base URL. Stop fails the test when Serve returns an error or does not return
// within 30 s of the cancel (dumping the goroutines to show what hangs).
func Serve(t testing.TB, svc *service.Service) (url string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- svc.Serve(ctx, ln) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
			t.Error("Serve did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

// AdminKey creates an admin API key in svc's store, as `facefleet keys create
// -role admin` would; rate and burst 0 take the service's defaults.
func AdminKey(t testing.TB, svc *service.Service, name string, rate float64, burst int) string {
	t.Helper()
	key, _, err := apikeys.NewStore(svc.Outputs, apikeys.Options{}).Create(context.Background(), apikeys.Admin, name, rate, burst)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
