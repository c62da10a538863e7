package lambdatest

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// serve starts h on 127.0.0.1 and stops it when the test ends.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

// fakeSQS answers GetQueueAttributes (AWS JSON 1.0) with a settable backlog.
type fakeSQS struct {
	mu      sync.Mutex
	visible int
	deny    bool // answer AccessDenied, as SQS does without sqs:GetQueueAttributes
	calls   int
}

func (f *fakeSQS) set(visible int, deny bool) {
	f.mu.Lock()
	f.visible, f.deny = visible, deny
	f.mu.Unlock()
}

func (f *fakeSQS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	if f.deny {
		w.Header().Set("x-amzn-query-error", "AccessDenied;Sender")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"__type":"com.amazon.coral.service#AccessDeniedException","message":"not authorized to perform sqs:GetQueueAttributes"}`)
		return
	}
	if tgt := r.Header.Get("X-Amz-Target"); tgt != "AmazonSQS.GetQueueAttributes" {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"__type":"com.amazonaws.sqs#UnsupportedOperation","message":"fake SQS: %s"}`, tgt)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"Attributes": map[string]string{
		"ApproximateNumberOfMessages":           strconv.Itoa(f.visible),
		"ApproximateNumberOfMessagesNotVisible": "0",
		"ApproximateNumberOfMessagesDelayed":    "0",
	}})
}

func (f *fakeSQS) count() int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls }

// fakeEC2 is a tiny EC2 query-protocol server: DescribeInstances (tag filter
// honoured), StartInstances, StopInstances, RunInstances.
type fakeEC2 struct {
	mu        sync.Mutex
	instances map[string]string // id -> state
	tags      map[string]string // id -> value of tagKey
	tagKey    string
	next      int
	down      bool
	actions   []string // mutating calls, e.g. "StartInstances i-1"
	runs      []url.Values
}

func newFakeEC2(tagKey, tagValue string, states ...string) *fakeEC2 {
	f := &fakeEC2{instances: map[string]string{}, tags: map[string]string{}, tagKey: tagKey}
	for _, s := range states {
		f.next++
		id := fmt.Sprintf("i-%017d", f.next)
		f.instances[id], f.tags[id] = s, tagValue
	}
	return f
}

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

func (f *fakeEC2) fail(w http.ResponseWriter, status int, code, msg string) {
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>fake</RequestID></Response>`, code, msg)
}

func indexed(form url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v := form.Get(prefix + "." + strconv.Itoa(i))
		if v == "" {
			return out
		}
		out = append(out, v)
	}
}

func (f *fakeEC2) instanceXML(id string) string {
	s := f.instances[id]
	return fmt.Sprintf(`<item><instanceId>%s</instanceId><instanceState><code>%d</code><name>%s</name></instanceState><launchTime>2026-11-27T22:00:00.000Z</launchTime><tagSet><item><key>%s</key><value>%s</value></item></tagSet></item>`,
		id, stateCodes[s], s, f.tagKey, f.tags[id])
}

func (f *fakeEC2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, err := url.ParseQuery(string(body))
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	if err != nil {
		f.fail(w, http.StatusBadRequest, "InvalidParameterValue", "bad form")
		return
	}
	if f.down {
		f.fail(w, http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation.")
		return
	}
	action := form.Get("Action")
	const ns = `xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"`
	switch action {
	case "DescribeInstances":
		want := map[string]bool{}
		for _, id := range indexed(form, "InstanceId") {
			want[id] = true
		}
		tagWant := ""
		for i := 1; ; i++ {
			name := form.Get("Filter." + strconv.Itoa(i) + ".Name")
			if name == "" {
				break
			}
			if name == "tag:"+f.tagKey {
				tagWant = form.Get("Filter." + strconv.Itoa(i) + ".Value.1")
			}
		}
		ids := make([]string, 0, len(f.instances))
		for id := range f.instances {
			if (len(want) == 0 || want[id]) && (tagWant == "" || f.tags[id] == tagWant) && f.instances[id] != "terminated" {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		var b strings.Builder
		fmt.Fprintf(&b, `<DescribeInstancesResponse %s><requestId>fake</requestId><reservationSet>`, ns)
		if len(ids) > 0 {
			b.WriteString(`<item><reservationId>r-1</reservationId><ownerId>123456789012</ownerId><instancesSet>`)
			for _, id := range ids {
				b.WriteString(f.instanceXML(id))
			}
			b.WriteString(`</instancesSet></item>`)
		}
		b.WriteString(`</reservationSet></DescribeInstancesResponse>`)
		io.WriteString(w, b.String())
	case "StartInstances", "StopInstances":
		ids := indexed(form, "InstanceId")
		to := map[string]string{"StartInstances": "pending", "StopInstances": "stopping"}[action]
		var b strings.Builder
		fmt.Fprintf(&b, `<%sResponse %s><requestId>fake</requestId><instancesSet>`, action, ns)
		for _, id := range ids {
			prev, ok := f.instances[id]
			if !ok {
				f.fail(w, http.StatusBadRequest, "InvalidInstanceID.NotFound", "no "+id)
				return
			}
			f.instances[id] = to
			fmt.Fprintf(&b, `<item><instanceId>%s</instanceId><currentState><code>%d</code><name>%s</name></currentState><previousState><code>%d</code><name>%s</name></previousState></item>`,
				id, stateCodes[to], to, stateCodes[prev], prev)
		}
		fmt.Fprintf(&b, `</instancesSet></%sResponse>`, action)
		f.actions = append(f.actions, action+" "+strings.Join(ids, ","))
		io.WriteString(w, b.String())
	case "RunInstances":
		n, _ := strconv.Atoi(form.Get("MaxCount"))
		f.runs = append(f.runs, form)
		tag := form.Get("TagSpecification.1.Tag.1.Value")
		var b strings.Builder
		fmt.Fprintf(&b, `<RunInstancesResponse %s><requestId>fake</requestId><reservationId>r-2</reservationId><ownerId>123456789012</ownerId><instancesSet>`, ns)
		var ids []string
		for range n {
			f.next++
			id := fmt.Sprintf("i-%017d", f.next)
			f.instances[id], f.tags[id] = "pending", tag
			ids = append(ids, id)
			b.WriteString(f.instanceXML(id))
		}
		b.WriteString(`</instancesSet></RunInstancesResponse>`)
		f.actions = append(f.actions, "RunInstances "+strings.Join(ids, ","))
		io.WriteString(w, b.String())
	default:
		f.fail(w, http.StatusBadRequest, "InvalidAction", "fake EC2 does not do "+action)
	}
}

// snapshot returns the mutating actions so far and the count of live instances.
func (f *fakeEC2) snapshot() (actions []string, live int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.instances {
		if s != "terminated" {
			live++
		}
	}
	return append([]string(nil), f.actions...), live
}
