package ec2fleet_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/fleet/ec2fleet"
	"github.com/facefleet/facefleet/internal/fleet/ec2fleet/fakeec2"
)

// fakeIMDS serves IMDSv2: a token from PUT /latest/api/token, required on GETs.
func fakeIMDS(t *testing.T, id string) string {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /latest/api/token", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") == "" {
			http.Error(w, "no ttl", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
		w.Write([]byte("tok"))
	})
	mux.HandleFunc("GET /latest/meta-data/instance-id", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Aws-Ec2-Metadata-Token") != "tok" {
			http.Error(w, "IMDSv2 token required", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(id))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestSelfStop(t *testing.T) {
	fake := fakeec2.New(fakeec2.Options{})
	t.Cleanup(fake.Close)
	id := fake.Add("running", map[string]string{"facefleet": "app"})
	ctx := context.Background()
	got, err := ec2fleet.InstanceID(ctx, fakeIMDS(t, id))
	if err != nil || got != id {
		t.Fatalf("InstanceID = %q, %v; want %s", got, err, id)
	}
	if err := ec2fleet.StopSelf(ctx, client(fake.URL), got); err != nil {
		t.Fatal(err)
	}
	if st := fake.Instances()[0].State; st != "stopping" && st != "stopped" {
		t.Fatalf("state after StopSelf = %s", st)
	}
	if _, err := ec2fleet.InstanceID(ctx, fakeIMDS(t, "<html>captive portal</html>")); err == nil {
		t.Fatal("InstanceID accepted a non-id")
	}
	if err := ec2fleet.StopSelf(ctx, client(fake.URL), "i-00000000000000bad"); !errors.Is(err, fleet.ErrNotFound) {
		t.Fatalf("StopSelf(unknown) = %v; want ErrNotFound", err)
	}
}
