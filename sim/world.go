package sim

import (
	"container/heap"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/scaling"
)

type msgState uint8

const (
	msgNotYet msgState = iota
	msgVisible
	msgInFlight
	msgDone
)

type message struct {
	arrival   time.Duration
	svc       time.Duration
	state     msgState
	receipt   int
	answerAt  time.Duration
	recvAt    time.Duration
	receivedN int
}

type instance struct {
	id           string
	state        fleet.State
	since        time.Duration
	epoch        int // bumped on every state change; stale events compare it
	runningSince time.Duration
	ready        bool
	busy         int // message index, -1 when idle
	retiring     bool
	idleSince    time.Duration // when it last became idle: long polls favour the longest waiting
	idleArmed    bool
	idleEpoch    int
}

type event struct {
	at  time.Duration
	seq uint64
	fn  func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type countSample struct {
	at                time.Duration
	visible, inFlight int
}

// Point is one sample of the plotted timeline.
type Point struct {
	T        float64 `json:"t"`
	Backlog  int     `json:"backlog"` // visible + in flight (true counts)
	Capacity int     `json:"capacity"`
	Running  int     `json:"running"`
}

// TraceEvent is one instance transition or answer, for hand-checked tests.
type TraceEvent struct {
	At   time.Duration
	What string // "pending", "running", "ready", "stopping", "stopped", "answer"
	ID   string // instance ID, or message index for answers
}

type world struct {
	cfg  Config
	trig Triggers
	base time.Time
	now  time.Duration
	seq  uint64
	evq  eventQueue

	delays *rand.Rand
	blips  *rand.Rand

	msgs    []message
	visible []int // FIFO of message indices; head at vhead
	vhead   int
	nVis    int
	nFlight int
	hist    []countSample

	insts  []*instance
	nextID int

	ctrl   *scaling.Controller
	oracle *oracle
	ov     *overflowState // nil: no overflow function

	// metrics
	answered    int
	lastAnswer  time.Duration
	firstAnswer time.Duration
	billed      time.Duration
	starts      int
	stops       int
	busyStops   int
	flaps       int
	stopTimes   []time.Duration // unmatched stops, for flap detection
	lastZero    time.Duration   // last time the true backlog was zero
	lastCapChg  time.Duration
	zeroAt      time.Duration // when capacity last became zero
	stepErrors  int
	timeline    []Point
	trace       []TraceEvent
	fn          lambdaState // the scaler Lambda as deployed (deployed.go)
	lastArrival time.Duration
	done        bool
}

func (w *world) at(t time.Duration, fn func()) {
	if t < w.now {
		t = w.now
	}
	w.seq++
	heap.Push(&w.evq, &event{at: t, seq: w.seq, fn: fn})
}

func (w *world) clock() time.Time { return w.base.Add(w.now) }

func (w *world) traceAdd(what, id string) {
	w.trace = append(w.trace, TraceEvent{At: w.now, What: what, ID: id})
}

func (w *world) capacity() (pending, running int) {
	for _, in := range w.insts {
		switch in.state {
		case fleet.Pending:
			pending++
		case fleet.Running:
			running++
		}
	}
	return
}

// countsChanged records the true counts (for lagging reads, plots and flaps).
func (w *world) countsChanged() {
	w.hist = append(w.hist, countSample{w.now, w.nVis, w.nFlight})
	if w.nVis+w.nFlight == 0 {
		w.lastZero = w.now
	}
	w.sample()
}

func (w *world) sample() {
	p, r := w.capacity()
	pt := Point{T: w.now.Seconds(), Backlog: w.nVis + w.nFlight, Capacity: p + r, Running: r}
	if n := len(w.timeline); n > 0 && w.timeline[n-1].T == pt.T {
		w.timeline[n-1] = pt
		return
	}
	w.timeline = append(w.timeline, pt)
}

func (w *world) countsAt(t time.Duration) (int, int) {
	i := sort.Search(len(w.hist), func(i int) bool { return w.hist[i].at > t })
	if i == 0 {
		return 0, 0
	}
	s := w.hist[i-1]
	return s.visible, s.inFlight
}
