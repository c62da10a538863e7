package ec2fleet_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/facefleet/facefleet/internal/fleet/ec2fleet"
)

// TestRunInstancesTagsInstanceAndVolume checks the request itself: the scaler's
// IAM policy (template.yaml, RunTaggedAppTierInstances) allows RunInstances on
// instance/* and volume/* only with the fleet tag as a request tag, so both
// resource types must carry it in TagSpecification (a launch template's own
// tags are not request tags).
func TestRunInstancesTagsInstanceAndVolume(t *testing.T) {
	var (
		mu   sync.Mutex
		form url.Values
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.PostForm.Get("Action") == "DescribeInstances" { // an empty fleet
			fmt.Fprint(w, `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><reservationSet/></DescribeInstancesResponse>`)
			return
		}
		if r.PostForm.Get("Action") != "RunInstances" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `<Response><Errors><Error><Code>Unsupported</Code><Message>%s</Message></Error></Errors></Response>`, r.PostForm.Get("Action"))
			return
		}
		mu.Lock()
		form = r.PostForm
		mu.Unlock()
		fmt.Fprint(w, `<RunInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId>`+
			`<reservationId>r-1</reservationId><ownerId>1</ownerId><instancesSet><item><instanceId>i-1</instanceId>`+
			`<instanceState><code>0</code><name>pending</name></instanceState></item></instancesSet></RunInstancesResponse>`)
	}))
	t.Cleanup(srv.Close)
	f, err := ec2fleet.New(client(srv.URL), ec2fleet.Options{LaunchTemplateID: "lt-0123456789", TagKey: "facefleet-app", TagValue: "stack-a", Max: 5})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Launch(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	tagged := map[string]bool{}
	for i := 1; ; i++ {
		p := fmt.Sprintf("TagSpecification.%d.", i)
		rt := form.Get(p + "ResourceType")
		if rt == "" {
			break
		}
		for j := 1; form.Get(fmt.Sprintf("%sTag.%d.Key", p, j)) != ""; j++ {
			if form.Get(fmt.Sprintf("%sTag.%d.Key", p, j)) == "facefleet-app" && form.Get(fmt.Sprintf("%sTag.%d.Value", p, j)) == "stack-a" {
				tagged[rt] = true
			}
		}
	}
	for _, rt := range []string{"instance", "volume"} {
		if !tagged[rt] {
			t.Errorf("RunInstances does not tag %s with facefleet-app=stack-a; request: %v", rt, form)
		}
	}
}
