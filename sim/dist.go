package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Dist is a duration drawn uniformly from [Mean-Jitter, Mean+Jitter] (never below
// zero). Jitter 0 makes it fixed, which the hand-checked tests use.
type Dist struct {
	Mean   time.Duration `json:"mean"`
	Jitter time.Duration `json:"jitter"`
}

// Fixed is a Dist without jitter.
func Fixed(d time.Duration) Dist { return Dist{Mean: d} }

// Sample draws one value.
func (d Dist) Sample(r *rand.Rand) time.Duration {
	if d.Jitter <= 0 {
		return max(d.Mean, 0)
	}
	v := d.Mean + time.Duration((2*r.Float64()-1)*float64(d.Jitter))
	return max(v, 0)
}

func (d Dist) String() string {
	if d.Jitter == 0 {
		return d.Mean.String()
	}
	return d.Mean.String() + "+-" + d.Jitter.String()
}

// ErrBadDist is returned by ParseDist.
var ErrBadDist = errors.New("sim: bad duration distribution")

// ParseDist reads "MEAN" or "MEAN+-JITTER" with Go durations, e.g. "60ms+-15ms".
func ParseDist(s string) (Dist, error) {
	mean, jit, hasJit := strings.Cut(strings.TrimSpace(s), "+-")
	m, err := time.ParseDuration(mean)
	if err != nil || m < 0 {
		return Dist{}, fmt.Errorf("%w %q: want MEAN or MEAN+-JITTER, e.g. 60ms+-15ms", ErrBadDist, s)
	}
	d := Dist{Mean: m}
	if hasJit {
		j, err := time.ParseDuration(jit)
		if err != nil || j < 0 {
			return Dist{}, fmt.Errorf("%w %q: bad jitter", ErrBadDist, s)
		}
		d.Jitter = j
	}
	return d, nil
}

// Set implements flag.Value.
func (d *Dist) Set(s string) error {
	v, err := ParseDist(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}
