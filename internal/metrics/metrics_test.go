package metrics_test

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/smithy-go/encoding/cbor"

	"github.com/facefleet/facefleet/internal/metrics"
)

// fakeCloudWatch records PutMetricData calls (Smithy RPC v2 CBOR, the protocol
// this SDK version speaks to CloudWatch).
type fakeCloudWatch struct {
	mu    sync.Mutex
	paths []string
	names [][]string
	ns    []string
}

func (f *fakeCloudWatch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var rd io.Reader = r.Body
	// The SDK gzips large PutMetricData bodies (request compression).
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rd = zr
	}
	body, _ := io.ReadAll(rd)
	v, err := cbor.Decode(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	m, _ := v.(cbor.Map)
	var names []string
	if list, ok := m["MetricData"].(cbor.List); ok {
		for _, d := range list {
			if dm, ok := d.(cbor.Map); ok {
				if s, ok := dm["MetricName"].(cbor.String); ok {
					names = append(names, string(s))
				}
			}
		}
	}
	ns, _ := m["Namespace"].(cbor.String)
	f.mu.Lock()
	f.paths = append(f.paths, r.URL.Path)
	f.names = append(f.names, names)
	f.ns = append(f.ns, string(ns))
	f.mu.Unlock()
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Type", "application/cbor")
	w.Write(cbor.Encode(cbor.Map{}))
}

func TestCloudWatchPublish(t *testing.T) {
	fake := &fakeCloudWatch{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	client := cloudwatch.New(cloudwatch.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1})
	p, err := metrics.NewCloudWatch(client, "facefleet-test")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]metrics.Datum, 1001)
	for i := range data {
		data[i] = metrics.Datum{Name: "QueueDepth", Value: float64(i), Unit: metrics.Count, Dimensions: map[string]string{"Queue": "requests"}}
	}
	data[1000].Name = "Instances"
	if err := p.Publish(context.Background(), data...); err != nil {
		t.Fatal(err)
	}
	if len(fake.names) != 2 || len(fake.names[0]) != 1000 || len(fake.names[1]) != 1 || fake.names[1][0] != "Instances" {
		t.Fatalf("calls carried %d batches; want 1000 + 1 (PutMetricData's limit)", len(fake.names))
	}
	if fake.ns[0] != "facefleet-test" || !strings.HasSuffix(fake.paths[0], "/operation/PutMetricData") {
		t.Fatalf("namespace %q path %q", fake.ns[0], fake.paths[0])
	}
	if err := p.Publish(context.Background(), metrics.Datum{Value: 1}); err == nil {
		t.Fatal("a datum without a name was published")
	}
	// A bad datum past the first batch publishes nothing, not a partial set.
	data[1000].Name = ""
	calls := len(fake.names)
	if err := p.Publish(context.Background(), data...); err == nil || len(fake.names) != calls {
		t.Fatalf("Publish with a bad 1001st datum = %v after %d call(s); want an error and no call", err, len(fake.names)-calls)
	}
	if _, err := metrics.NewCloudWatch(client, ""); err == nil {
		t.Fatal("empty namespace accepted")
	}
}
