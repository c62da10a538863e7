// Package fakeec2 is a test double of the EC2 API on 127.0.0.1: it speaks EC2's
// query protocol (form-encoded POST, XML in the 2016-11-15 namespace) for the
// actions the fleet adapter and the app tier use, moves instances through
// pending -> running and stopping -> stopped with configurable delays, injects
// errors (InsufficientInstanceCapacity, RequestLimitExceeded, ...) and calls hooks
// when an instance starts running or begins stopping, so an e2e can start and stop
// real processes as "instances". DescribeInstances can lag the other calls by a
// configurable 5-15 s, as EC2's eventually consistent reads do. RunInstances
// honours ClientToken (a repeated token returns the first call's instances; the
// same token with other parameters fails with IdempotentParameterMismatch). Only
// for tests; docs/emulators.md lists what it does not model.
package fakeec2

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Namespace is EC2's XML namespace.
const Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// Options configure the fake.
type Options struct {
	// PendingDelay and StoppingDelay are how long instances stay pending and
	// stopping (0: move at once, still asynchronously).
	PendingDelay, StoppingDelay time.Duration
	// Capacity caps the non-terminated instances; RunInstances beyond it fails with
	// InsufficientInstanceCapacity (0: unlimited).
	Capacity int
	// OnRunning is called (in its own goroutine) when an instance becomes running.
	OnRunning func(id string)
	// OnStopping is called (in its own goroutine) when an instance begins stopping;
	// the instance becomes stopped StoppingDelay after the hook returns, so a hook
	// that waits for its process to exit makes "stopped" mean "gone".
	OnStopping func(id string)
	// Now defaults to time.Now. A virtual clock makes the lag below virtual too
	// (state delays stay in real time).
	Now func() time.Time
	// LagMin and LagMax: each state change (launch, start, stop, running,
	// stopped) becomes visible to DescribeInstances and DescribeInstanceStatus a
	// random lag in [LagMin, LagMax] after it happened (by Now); until then
	// they show the previous state, and a new instance is absent. 0: no lag.
	// Start/Stop/Run act on the true state, as EC2's do.
	LagMin, LagMax time.Duration
	// Seed seeds the lag's random numbers (tests are repeatable).
	Seed uint64
}

// Instance is the fake's view of an instance.
type Instance struct {
	ID         string
	State      string
	Tags       map[string]string
	LaunchTime time.Time
	Reason     string
	Template   string
	// seen is the history DescribeInstances answers from under a lag.
	seen []view
}

// view is one state change and when DescribeInstances starts showing it.
type view struct {
	at     time.Time
	state  string
	reason string
	launch time.Time
}

// Server is the fake EC2 endpoint.
type Server struct {
	URL  string
	srv  *httptest.Server
	opts Options

	mu      sync.Mutex
	insts   map[string]*Instance
	order   []string
	seq     int
	tokens  map[string]token // RunInstances client token -> first call
	rnd     *rand.Rand
	inject  map[string][]string // action -> error codes to return, in order
	calls   map[string]int
	replays int
	closed  bool
	quit    chan struct{} // closed by Close: delayed transitions are dropped at once
	pending sync.WaitGroup
}

// New starts the fake on 127.0.0.1; Close stops it.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, quit: make(chan struct{}), insts: map[string]*Instance{}, tokens: map[string]token{}, inject: map[string][]string{}, calls: map[string]int{},
		rnd: rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server and waits for hook goroutines to finish; transitions
// still waiting for their delay (PendingDelay, StoppingDelay) are dropped
// without waiting it out.
func (s *Server) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.quit)
	}
	s.mu.Unlock()
	s.srv.Close()
	s.pending.Wait()
}

// Inject makes the next calls of action fail with the given codes, one per call
// (e.g. Inject("RunInstances", "InsufficientInstanceCapacity")).
func (s *Server) Inject(action string, codes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inject[action] = append(s.inject[action], codes...)
}

// Calls is how many times action was called.
func (s *Server) Calls(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[action]
}

// Add creates an instance directly in state (e.g. a stopped pool member).
func (s *Server) Add(state string, tags map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.newInstance(tags, "")
	in.State = state
	in.seen = nil
	s.record(in)
	return in.ID
}

// Terminate moves an instance to terminated at once (an operator or a failed
// boot took it away).
func (s *Server) Terminate(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.insts[id]; ok {
		in.State = "terminated"
		s.record(in)
	}
}

// Instances returns a snapshot, sorted by ID.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := make([]Instance, 0, len(s.order))
	for _, id := range s.order {
		in := *s.insts[id]
		in.Tags = copyTags(in.Tags)
		res = append(res, in)
	}
	sort.Slice(res, func(i, j int) bool { return res[i].ID < res[j].ID })
	return res
}

// Count tallies instances in state.
func (s *Server) Count(state string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, in := range s.insts {
		if in.State == state {
			n++
		}
	}
	return n
}

func copyTags(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (s *Server) newInstance(tags map[string]string, template string) *Instance {
	s.seq++
	in := &Instance{
		ID: fmt.Sprintf("i-%017x", s.seq), State: "pending", Tags: copyTags(tags),
		LaunchTime: s.opts.Now().UTC().Truncate(time.Second), Template: template,
	}
	s.insts[in.ID] = in
	s.order = append(s.order, in.ID)
	s.record(in)
	return in
}

// record notes in's current state for lagging reads. Called with s.mu held.
func (s *Server) record(in *Instance) {
	at := s.opts.Now()
	if s.opts.LagMax > 0 {
		lag := s.opts.LagMin
		if span := s.opts.LagMax - s.opts.LagMin; span > 0 {
			lag += time.Duration(s.rnd.Int64N(int64(span) + 1))
		}
		at = at.Add(lag)
	}
	if n := len(in.seen); n > 0 && at.Before(in.seen[n-1].at) {
		at = in.seen[n-1].at // a later change never shows before an earlier one
	}
	in.seen = append(in.seen, view{at: at, state: in.State, reason: in.Reason, launch: in.LaunchTime})
}

// visible is in as DescribeInstances shows it now (false: not yet visible).
// Called with s.mu held.
func (s *Server) visible(in *Instance) (Instance, bool) {
	if s.opts.LagMax <= 0 {
		return *in, true
	}
	now := s.opts.Now()
	for i := len(in.seen) - 1; i >= 0; i-- {
		if v := in.seen[i]; !v.at.After(now) {
			c := *in
			c.State, c.Reason, c.LaunchTime = v.state, v.reason, v.launch
			return c, true
		}
	}
	return Instance{}, false
}

// after runs f after d unless the server closed; f runs with s.mu held.
func (s *Server) after(d time.Duration, f func()) {
	s.pending.Add(1)
	go func() {
		defer s.pending.Done()
		if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-s.quit:
				t.Stop()
				return
			}
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return
		}
		f()
		s.mu.Unlock()
	}()
}

// hook runs a user hook outside the lock, then next (with the lock held) after d.
func (s *Server) hook(h func(string), id string, d time.Duration, next func()) {
	s.pending.Add(1)
	go func() {
		defer s.pending.Done()
		if h != nil {
			h(id)
		}
		if next != nil {
			s.after(d, next)
		}
	}()
}

// toPending schedules pending -> running. Called with s.mu held.
func (s *Server) toPending(in *Instance) {
	in.State = "pending"
	in.LaunchTime = s.opts.Now().UTC().Truncate(time.Second)
	in.Reason = ""
	s.record(in)
	id := in.ID
	s.after(s.opts.PendingDelay, func() {
		if in.State != "pending" {
			return
		}
		in.State = "running"
		s.record(in)
		s.hook(s.opts.OnRunning, id, 0, nil)
	})
}

// toStopping schedules stopping -> stopped after the hook. Called with s.mu held.
func (s *Server) toStopping(in *Instance) {
	in.State = "stopping"
	in.Reason = "User initiated (" + s.opts.Now().UTC().Format("2006-01-02 15:04:05") + " GMT)"
	s.record(in)
	s.hook(s.opts.OnStopping, in.ID, s.opts.StoppingDelay, func() {
		if in.State == "stopping" {
			in.State = "stopped"
			s.record(in)
		}
	})
}

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

// apiError is an EC2 error response.
type apiError struct {
	status  int
	code    string
	message string
}

func errorf(code, format string, args ...any) *apiError {
	status := http.StatusBadRequest
	if code == "RequestLimitExceeded" || code == "InsufficientInstanceCapacity" {
		status = http.StatusServiceUnavailable
	}
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeErr(w, errorf("InvalidAction", "EC2 query API expects POST, got %s", r.Method))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		writeErr(w, errorf("InvalidParameterValue", "bad form body: %v", err))
		return
	}
	form := r.PostForm
	action := form.Get("Action")
	s.mu.Lock()
	s.calls[action]++
	if codes := s.inject[action]; len(codes) > 0 {
		code := codes[0]
		s.inject[action] = codes[1:]
		s.mu.Unlock()
		writeErr(w, errorf(code, "injected %s for %s", code, action))
		return
	}
	var (
		body any
		aerr *apiError
	)
	switch action {
	case "DescribeInstances":
		body, aerr = s.describeInstances(form)
	case "RunInstances":
		body, aerr = s.runInstances(form)
	case "StartInstances":
		body, aerr = s.startStop(form, true)
	case "StopInstances":
		body, aerr = s.startStop(form, false)
	case "CreateTags":
		body, aerr = s.createTags(form)
	case "DescribeInstanceStatus":
		body, aerr = s.describeStatus(form)
	default:
		aerr = errorf("InvalidAction", "the action %q is not valid for this web service (fakeec2)", action)
	}
	s.mu.Unlock()
	if aerr != nil {
		writeErr(w, aerr)
		return
	}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	if err := xml.NewEncoder(&buf).Encode(body); err != nil {
		writeErr(w, &apiError{status: http.StatusInternalServerError, code: "InternalError", message: "fakeec2: encode response: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}

func writeErr(w http.ResponseWriter, e *apiError) {
	type xerr struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	resp := struct {
		XMLName   xml.Name `xml:"Response"`
		Errors    []xerr   `xml:"Errors>Error"`
		RequestID string   `xml:"RequestID"`
	}{Errors: []xerr{{e.code, e.message}}, RequestID: "fake-request"}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.status)
	_ = xml.NewEncoder(w).Encode(resp)
}

// list reads Prefix.1, Prefix.2, ... from the form.
func list(form url.Values, prefix string) []string {
	var res []string
	for i := 1; ; i++ {
		v, ok := form[prefix+"."+strconv.Itoa(i)]
		if !ok {
			return res
		}
		res = append(res, v[0])
	}
}

type filter struct {
	name   string
	values []string
}

func filters(form url.Values) []filter {
	var res []filter
	for i := 1; ; i++ {
		p := "Filter." + strconv.Itoa(i)
		name := form.Get(p + ".Name")
		if name == "" {
			return res
		}
		res = append(res, filter{name: name, values: list(form, p+".Value")})
	}
}

func contains(vs []string, v string) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

func (f filter) match(in *Instance) (bool, *apiError) {
	switch {
	case f.name == "instance-state-name":
		return contains(f.values, in.State), nil
	case f.name == "instance-id":
		return contains(f.values, in.ID), nil
	case f.name == "tag-key":
		for _, v := range f.values {
			if _, ok := in.Tags[v]; ok {
				return true, nil
			}
		}
		return false, nil
	case strings.HasPrefix(f.name, "tag:"):
		v, ok := in.Tags[strings.TrimPrefix(f.name, "tag:")]
		return ok && contains(f.values, v), nil
	}
	return false, errorf("InvalidParameterValue", "the filter %q is invalid (fakeec2 supports instance-state-name, instance-id, tag-key, tag:KEY)", f.name)
}

func checkIDs(ids []string) *apiError {
	for _, id := range ids {
		if !strings.HasPrefix(id, "i-") || len(id) < 10 {
			return errorf("InvalidInstanceID.Malformed", "Invalid id: %q", id)
		}
	}
	return nil
}

// lookup returns the instances for ids, or InvalidInstanceID.NotFound.
func (s *Server) lookup(ids []string) ([]*Instance, *apiError) {
	if err := checkIDs(ids); err != nil {
		return nil, err
	}
	var res []*Instance
	var missing []string
	for _, id := range ids {
		in, ok := s.insts[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		res = append(res, in)
	}
	if len(missing) > 0 {
		return nil, errorf("InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist", strings.Join(missing, ", "))
	}
	return res, nil
}

// lookupVisible is lookup under the read lag: an instance not visible yet is
// InvalidInstanceID.NotFound, as on EC2 right after RunInstances.
func (s *Server) lookupVisible(ids []string) ([]*Instance, *apiError) {
	found, err := s.lookup(ids)
	if err != nil {
		return nil, err
	}
	res := make([]*Instance, 0, len(found))
	var missing []string
	for _, in := range found {
		v, ok := s.visible(in)
		if !ok {
			missing = append(missing, in.ID)
			continue
		}
		res = append(res, &v)
	}
	if len(missing) > 0 {
		return nil, errorf("InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist", strings.Join(missing, ", "))
	}
	return res, nil
}

// XML documents.

type xmlState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xmlTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type xmlInstance struct {
	InstanceID   string   `xml:"instanceId"`
	ImageID      string   `xml:"imageId"`
	InstanceType string   `xml:"instanceType"`
	State        xmlState `xml:"instanceState"`
	Reason       string   `xml:"reason"`
	LaunchTime   string   `xml:"launchTime"`
	PrivateIP    string   `xml:"privateIpAddress"`
	Tags         []xmlTag `xml:"tagSet>item"`
	AMILaunchIdx int      `xml:"amiLaunchIndex"`
}

func toXML(in *Instance, idx int) xmlInstance {
	x := xmlInstance{
		InstanceID: in.ID, ImageID: "ami-fakeec2", InstanceType: "t3.micro",
		State: xmlState{stateCodes[in.State], in.State}, Reason: in.Reason,
		LaunchTime: in.LaunchTime.Format(time.RFC3339), PrivateIP: "10.0.0." + strconv.Itoa(idx%250+1),
		AMILaunchIdx: idx,
	}
	keys := make([]string, 0, len(in.Tags))
	for k := range in.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		x.Tags = append(x.Tags, xmlTag{k, in.Tags[k]})
	}
	return x
}

type xmlReservation struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []xmlInstance `xml:"instancesSet>item"`
}

type describeResp struct {
	XMLName      xml.Name         `xml:"DescribeInstancesResponse"`
	NS           string           `xml:"xmlns,attr"`
	RequestID    string           `xml:"requestId"`
	Reservations []xmlReservation `xml:"reservationSet>item"`
	NextToken    string           `xml:"nextToken,omitempty"`
}

func (s *Server) describeInstances(form url.Values) (any, *apiError) {
	ids := list(form, "InstanceId")
	fs := filters(form)
	// Reject an unknown filter even when there is nothing to match it against.
	for _, f := range fs {
		if _, err := f.match(&Instance{}); err != nil {
			return nil, err
		}
	}
	max := 0
	if v := form.Get("MaxResults"); v != "" {
		if len(ids) > 0 {
			return nil, errorf("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 || n > 1000 {
			return nil, errorf("InvalidParameterValue", "MaxResults %q must be 5..1000", v)
		}
		max = n
	}
	start := 0
	if tok := form.Get("NextToken"); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 {
			return nil, errorf("InvalidParameterValue", "bad NextToken %q", tok)
		}
		start = n
	}
	var cands []*Instance
	if len(ids) > 0 {
		found, err := s.lookupVisible(ids)
		if err != nil {
			return nil, err
		}
		cands = found
	} else {
		for _, id := range s.order {
			if v, ok := s.visible(s.insts[id]); ok {
				cands = append(cands, &v)
			}
		}
	}
	var matched []*Instance
	for _, in := range cands {
		ok := true
		for _, f := range fs {
			m, err := f.match(in)
			if err != nil {
				return nil, err
			}
			ok = ok && m
		}
		if ok {
			matched = append(matched, in)
		}
	}
	resp := describeResp{NS: Namespace, RequestID: "fake-request"}
	end := len(matched)
	if start > end {
		start = end
	}
	if max > 0 && start+max < end {
		end = start + max
		resp.NextToken = strconv.Itoa(end)
	}
	// One reservation per instance keeps pagination simple and is legal EC2 output.
	for i, in := range matched[start:end] {
		resp.Reservations = append(resp.Reservations, xmlReservation{
			ReservationID: "r-" + strings.TrimPrefix(in.ID, "i-"), OwnerID: "000000000000",
			Instances: []xmlInstance{toXML(in, start+i)},
		})
	}
	return resp, nil
}

// token is a RunInstances client token's first call.
type token struct {
	ids    []string
	params string
}

// requestParams is the request without its bookkeeping fields, to detect a
// token reused with other parameters.
func requestParams(form url.Values) string {
	c := url.Values{}
	for k, v := range form {
		if k != "ClientToken" && k != "Version" && k != "Action" {
			c[k] = v
		}
	}
	return c.Encode()
}

// Replays is how many RunInstances calls were answered from their client token
// instead of launching.
func (s *Server) Replays() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.replays
}

type runResp struct {
	XMLName xml.Name `xml:"RunInstancesResponse"`
	NS      string   `xml:"xmlns,attr"`
	xmlReservation
	RequestID string `xml:"requestId"`
}

func (s *Server) runInstances(form url.Values) (any, *apiError) {
	minC, err1 := strconv.Atoi(form.Get("MinCount"))
	maxC, err2 := strconv.Atoi(form.Get("MaxCount"))
	if err1 != nil || err2 != nil || minC < 1 || maxC < minC {
		return nil, errorf("InvalidParameterValue", "MinCount %q and MaxCount %q must be 1 <= MinCount <= MaxCount", form.Get("MinCount"), form.Get("MaxCount"))
	}
	tmpl := form.Get("LaunchTemplate.LaunchTemplateId")
	if tmpl == "" && form.Get("ImageId") == "" {
		return nil, errorf("MissingParameter", "The request must contain the parameter ImageId or a launch template")
	}
	if tmpl != "" && !strings.HasPrefix(tmpl, "lt-") {
		return nil, errorf("InvalidLaunchTemplateId.Malformed", "The launch template ID %q is malformed", tmpl)
	}
	resp := runResp{NS: Namespace, RequestID: "fake-request"}
	params := requestParams(form)
	if tok := form.Get("ClientToken"); tok != "" {
		if prev, ok := s.tokens[tok]; ok {
			if prev.params != params {
				return nil, errorf("IdempotentParameterMismatch", "The client token %q was already used with other parameters", tok)
			}
			s.replays++
			resp.ReservationID, resp.OwnerID = "r-token-"+tok, "000000000000"
			for i, id := range prev.ids {
				resp.Instances = append(resp.Instances, toXML(s.insts[id], i))
			}
			return resp, nil
		}
	}
	tags := map[string]string{}
	for i := 1; ; i++ {
		p := "TagSpecification." + strconv.Itoa(i)
		rt := form.Get(p + ".ResourceType")
		if rt == "" {
			break
		}
		if rt != "instance" {
			continue
		}
		for j := 1; ; j++ {
			k := form.Get(p + ".Tag." + strconv.Itoa(j) + ".Key")
			if k == "" {
				break
			}
			tags[k] = form.Get(p + ".Tag." + strconv.Itoa(j) + ".Value")
		}
	}
	n := maxC
	if s.opts.Capacity > 0 {
		live := 0
		for _, in := range s.insts {
			if in.State != "terminated" {
				live++
			}
		}
		room := s.opts.Capacity - live
		if room < minC {
			return nil, errorf("InsufficientInstanceCapacity", "We currently do not have sufficient t3.micro capacity in the Availability Zone you requested (fakeec2 capacity %d, %d in use)", s.opts.Capacity, live)
		}
		n = min(n, room)
	}
	var ids []string
	for i := 0; i < n; i++ {
		in := s.newInstance(tags, tmpl)
		s.toPending(in)
		ids = append(ids, in.ID)
		resp.Instances = append(resp.Instances, toXML(in, i))
	}
	if tok := form.Get("ClientToken"); tok != "" {
		s.tokens[tok] = token{ids: ids, params: params}
	}
	resp.ReservationID, resp.OwnerID = "r-"+strings.TrimPrefix(ids[0], "i-"), "000000000000"
	return resp, nil
}

type stateChange struct {
	InstanceID string   `xml:"instanceId"`
	Current    xmlState `xml:"currentState"`
	Previous   xmlState `xml:"previousState"`
}

type startStopResp struct {
	XMLName   xml.Name
	NS        string        `xml:"xmlns,attr"`
	RequestID string        `xml:"requestId"`
	Changes   []stateChange `xml:"instancesSet>item"`
}

func (s *Server) startStop(form url.Values, start bool) (any, *apiError) {
	ids := list(form, "InstanceId")
	if len(ids) == 0 {
		return nil, errorf("MissingParameter", "The request must contain the parameter InstanceId")
	}
	insts, err := s.lookup(ids)
	if err != nil {
		return nil, err
	}
	// EC2 checks every instance before changing any.
	for _, in := range insts {
		ok := map[string]bool{"stopped": true, "pending": true, "running": true}
		if !start {
			ok = map[string]bool{"running": true, "stopping": true, "stopped": true}
		}
		if !ok[in.State] {
			verb := "started"
			if !start {
				verb = "stopped"
			}
			return nil, errorf("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be %s (it is %s).", in.ID, verb, in.State)
		}
	}
	name := "StartInstancesResponse"
	if !start {
		name = "StopInstancesResponse"
	}
	resp := startStopResp{XMLName: xml.Name{Local: name}, NS: Namespace, RequestID: "fake-request"}
	for _, in := range insts {
		prev := xmlState{stateCodes[in.State], in.State}
		switch {
		case start && in.State == "stopped":
			s.toPending(in)
		case !start && in.State == "running":
			s.toStopping(in)
		}
		resp.Changes = append(resp.Changes, stateChange{in.ID, xmlState{stateCodes[in.State], in.State}, prev})
	}
	return resp, nil
}

type boolResp struct {
	XMLName   xml.Name
	NS        string `xml:"xmlns,attr"`
	RequestID string `xml:"requestId"`
	Return    bool   `xml:"return"`
}

func (s *Server) createTags(form url.Values) (any, *apiError) {
	ids := list(form, "ResourceId")
	insts, err := s.lookup(ids)
	if err != nil {
		return nil, err
	}
	for i := 1; ; i++ {
		k := form.Get("Tag." + strconv.Itoa(i) + ".Key")
		if k == "" {
			break
		}
		for _, in := range insts {
			in.Tags[k] = form.Get("Tag." + strconv.Itoa(i) + ".Value")
		}
	}
	return boolResp{XMLName: xml.Name{Local: "CreateTagsResponse"}, NS: Namespace, RequestID: "fake-request", Return: true}, nil
}

type statusItem struct {
	InstanceID string   `xml:"instanceId"`
	AZ         string   `xml:"availabilityZone"`
	State      xmlState `xml:"instanceState"`
}

type statusResp struct {
	XMLName   xml.Name     `xml:"DescribeInstanceStatusResponse"`
	NS        string       `xml:"xmlns,attr"`
	RequestID string       `xml:"requestId"`
	Statuses  []statusItem `xml:"instanceStatusSet>item"`
}

func (s *Server) describeStatus(form url.Values) (any, *apiError) {
	ids := list(form, "InstanceId")
	all := form.Get("IncludeAllInstances") == "true"
	var insts []*Instance
	if len(ids) > 0 {
		found, err := s.lookupVisible(ids)
		if err != nil {
			return nil, err
		}
		insts = found
	} else {
		for _, id := range s.order {
			if v, ok := s.visible(s.insts[id]); ok {
				insts = append(insts, &v)
			}
		}
	}
	resp := statusResp{NS: Namespace, RequestID: "fake-request"}
	for _, in := range insts {
		if !all && in.State != "running" {
			continue
		}
		resp.Statuses = append(resp.Statuses, statusItem{in.ID, "us-east-1a", xmlState{stateCodes[in.State], in.State}})
	}
	return resp, nil
}
