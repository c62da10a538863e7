package apikeys

import (
	"math"
	"sync"
	"time"
)

// Limiter is a set of token buckets, one per name (a key id, or a client
// address for requests without a key). Each bucket holds at most burst tokens,
// refills at rate tokens per second and starts full. Safe for concurrent use.
type Limiter struct {
	now func() time.Time
	max int

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
	rate   float64
	burst  float64
}

// NewLimiter returns a Limiter remembering at most maxBuckets names (default
// 100000); now is the clock (nil: time.Now).
func NewLimiter(maxBuckets int, now func() time.Time) *Limiter {
	if maxBuckets <= 0 {
		maxBuckets = 100000
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, max: maxBuckets, buckets: map[string]*bucket{}}
}

// Allow takes one token from name's bucket. When none is left it returns false
// and how long until one will be. rate <= 0 means unlimited.
func (l *Limiter) Allow(name string, rate float64, burst int) (bool, time.Duration) {
	if rate <= 0 {
		return true, 0
	}
	b := max(float64(burst), 1)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	bk, ok := l.buckets[name]
	if !ok {
		if len(l.buckets) >= l.max {
			l.prune(now)
		}
		bk = &bucket{tokens: b, last: now, rate: rate, burst: b}
		l.buckets[name] = bk
	}
	// A key's limits may change (its record is re-read): apply the new ones.
	bk.rate, bk.burst = rate, b
	if el := now.Sub(bk.last).Seconds(); el > 0 {
		bk.tokens = min(bk.burst, bk.tokens+el*bk.rate)
		bk.last = now
	}
	if bk.tokens >= 1 {
		bk.tokens--
		return true, 0
	}
	wait := time.Duration(math.Ceil((1 - bk.tokens) / bk.rate * float64(time.Second)))
	return false, wait
}

// Empty reports whether name's bucket has no whole token now (without taking
// one) and how long until it will; a name never seen is full.
func (l *Limiter) Empty(name string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	bk, ok := l.buckets[name]
	if !ok || bk.rate <= 0 {
		return false, 0
	}
	tokens := min(bk.burst, bk.tokens+max(now.Sub(bk.last).Seconds(), 0)*bk.rate)
	if tokens >= 1 {
		return false, 0
	}
	return true, time.Duration(math.Ceil((1 - tokens) / bk.rate * float64(time.Second)))
}

// prune drops buckets that have refilled (forgetting them changes nothing),
// and if that is not enough, every bucket. The caller holds mu.
func (l *Limiter) prune(now time.Time) {
	for name, bk := range l.buckets {
		if bk.tokens+now.Sub(bk.last).Seconds()*bk.rate >= bk.burst {
			delete(l.buckets, name)
		}
	}
	if len(l.buckets) >= l.max {
		clear(l.buckets)
	}
}

// Len is the number of buckets held (tests).
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
