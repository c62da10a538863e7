// Package cloudwatchtest is the project's one fake CloudWatch endpoint for tests
// (the metrics adapter's, the scaler Lambda's under the Runtime Interface
// Emulator, and the cloud e2e's). It speaks what this SDK version sends:
// PutMetricData in the Smithy RPC v2 CBOR protocol, gzip-compressed or not, and
// records every call.
//
// What it does not model: any other operation (answered 404 and recorded in
// Bad), authentication, throttling, CloudWatch's own validation of names, units
// and limits (the adapter enforces PutMetricData's limits itself and is tested
// for it), and storage or retrieval of the metrics.
package cloudwatchtest

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/smithy-go/encoding/cbor"
)

// Datum is one recorded metric value.
type Datum struct {
	Name       string
	Value      float64
	Dimensions map[string]string
}

// Put is one recorded PutMetricData call.
type Put struct {
	Path      string
	Namespace string
	Data      []Datum
}

// Server is a running fake; point the SDK's CloudWatch endpoint at URL.
type Server struct {
	URL string

	mu   sync.Mutex
	puts []Put
	bad  []string
}

// New starts a fake on 127.0.0.1, stopped when the test ends.
func New(t testing.TB) *Server {
	s := &Server{}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// ServeHTTP answers PutMetricData and records it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" { // the SDK compresses large bodies
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			s.fail(w, fmt.Sprintf("bad gzip body: %v", err), http.StatusBadRequest)
			return
		}
		rd = zr
	}
	body, err := io.ReadAll(rd)
	if err != nil {
		s.fail(w, fmt.Sprintf("unreadable body: %v", err), http.StatusBadRequest)
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/operation/PutMetricData") {
		s.fail(w, r.URL.Path, http.StatusNotFound)
		return
	}
	v, err := cbor.Decode(body)
	m, ok := v.(cbor.Map)
	if err != nil || !ok {
		s.fail(w, fmt.Sprintf("undecodable body: %v", err), http.StatusBadRequest)
		return
	}
	p := Put{Path: r.URL.Path}
	if ns, ok := m["Namespace"].(cbor.String); ok {
		p.Namespace = string(ns)
	}
	list, _ := m["MetricData"].(cbor.List)
	for _, item := range list {
		d, _ := item.(cbor.Map)
		name, _ := d["MetricName"].(cbor.String)
		value, _ := cbor.AsFloat64(d["Value"])
		dims := map[string]string{}
		dl, _ := d["Dimensions"].(cbor.List)
		for _, e := range dl {
			em, _ := e.(cbor.Map)
			k, _ := em["Name"].(cbor.String)
			v, _ := em["Value"].(cbor.String)
			dims[string(k)] = string(v)
		}
		p.Data = append(p.Data, Datum{Name: string(name), Value: value, Dimensions: dims})
	}
	s.mu.Lock()
	s.puts = append(s.puts, p)
	s.mu.Unlock()
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.Header().Set("Content-Type", "application/cbor")
	_, _ = w.Write(cbor.Encode(cbor.Map{}))
}

func (s *Server) fail(w http.ResponseWriter, what string, status int) {
	s.mu.Lock()
	s.bad = append(s.bad, what)
	s.mu.Unlock()
	http.Error(w, "fake CloudWatch: "+what, status)
}

// Puts returns the recorded PutMetricData calls, oldest first.
func (s *Server) Puts() []Put {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Put(nil), s.puts...)
}

// Bad returns the requests it refused (other operations, undecodable bodies).
func (s *Server) Bad() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bad...)
}

// Dimensions returns the dimensions of every datum of every put, in order.
func (s *Server) Dimensions() []map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]string
	for _, p := range s.puts {
		for _, d := range p.Data {
			out = append(out, d.Dimensions)
		}
	}
	return out
}

// Last returns the namespace of the last put, the values of name in it, and how
// many puts there were.
func (s *Server) Last(name string) (namespace string, values []float64, puts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.puts) == 0 {
		return "", nil, 0
	}
	last := s.puts[len(s.puts)-1]
	for _, d := range last.Data {
		if d.Name == name {
			values = append(values, d.Value)
		}
	}
	return last.Namespace, values, len(s.puts)
}
