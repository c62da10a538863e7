package sim

import (
	"context"
	"fmt"
	"slices"

	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/scaling"
)

type simFleet struct{ w *world }

func (f simFleet) List(ctx context.Context) ([]fleet.Instance, error) {
	out := make([]fleet.Instance, 0, len(f.w.insts))
	for _, in := range f.w.insts {
		out = append(out, fleet.Instance{ID: in.id, State: in.state, Since: f.w.base.Add(in.since)})
	}
	return out, ctx.Err()
}

func (f simFleet) find(id string) (*instance, error) {
	for _, in := range f.w.insts {
		if in.id == id {
			return in, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", fleet.ErrNotFound, id)
}

// pick finds every id and checks it is in one of the allowed states before any is
// acted on: EC2 acts on all or none.
func (f simFleet) pick(ids []string, allowed ...fleet.State) ([]*instance, error) {
	ins := make([]*instance, 0, len(ids))
	for _, id := range ids {
		in, err := f.find(id)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(allowed, in.state) {
			return nil, fmt.Errorf("%w: %s is %s", fleet.ErrIncorrectState, id, in.state)
		}
		ins = append(ins, in)
	}
	return ins, nil
}

func (f simFleet) Start(ctx context.Context, ids ...string) error {
	// As in EC2: starting a pending or running instance is an accepted no-op.
	ins, err := f.pick(ids, fleet.Stopped, fleet.Pending, fleet.Running)
	if err != nil {
		return err
	}
	for _, in := range ins {
		if in.state == fleet.Stopped {
			f.w.bringUp(in, 0)
		}
	}
	return ctx.Err()
}

func (f simFleet) Stop(ctx context.Context, ids ...string) error {
	// As in EC2: a pending instance cannot be stopped (IncorrectInstanceState);
	// stopping a stopping or stopped one is an accepted no-op.
	ins, err := f.pick(ids, fleet.Running, fleet.Stopping, fleet.Stopped)
	if err != nil {
		return err
	}
	for _, in := range ins {
		if in.state == fleet.Running {
			f.w.stop(in, true)
		}
	}
	return ctx.Err()
}

// retirer is the simulated fleet with the scaling.Retirer capability.
type retirer struct{ simFleet }

func (f retirer) Retire(ctx context.Context, ids ...string) error {
	ins, err := f.pick(ids, fleet.Running, fleet.Pending)
	if err != nil {
		return err
	}
	for _, in := range ins {
		if in.retiring {
			continue
		}
		in.retiring = true
		if in.busy < 0 {
			f.w.stop(in, false)
		}
	}
	return ctx.Err()
}

func (f simFleet) Launch(ctx context.Context, n int) ([]fleet.Instance, error) {
	if n < 0 {
		return nil, fmt.Errorf("sim: launch %d instances: count must be >= 0", n)
	}
	out := make([]fleet.Instance, 0, n)
	for range n {
		if c := f.w.cfg.Capacity; c > 0 && len(f.w.insts) >= c {
			return out, fmt.Errorf("sim: launch: %d instances held: %w", c, fleet.ErrCapacity)
		}
		in := f.w.newInstance()
		f.w.bringUp(in, f.w.cfg.LaunchExtra)
		out = append(out, fleet.Instance{ID: in.id, State: in.state, Since: f.w.base.Add(in.since)})
	}
	return out, ctx.Err()
}

func (w *world) newInstance() *instance {
	w.nextID++
	in := &instance{id: fmt.Sprintf("i-%04d", w.nextID), state: fleet.Stopped, busy: -1}
	w.insts = append(w.insts, in)
	return in
}

type simQueue struct {
	w     *world
	exact bool
}

func (q simQueue) Counts(ctx context.Context) (queue.Counts, error) {
	if q.exact {
		return queue.Counts{Visible: q.w.nVis, InFlight: q.w.nFlight}, ctx.Err()
	}
	v, f := q.w.countsAt(q.w.now - q.w.cfg.CountLag)
	if v+f == 0 && q.w.cfg.BlipRate > 0 && q.w.blips.Float64() < q.w.cfg.BlipRate {
		v = 1
	}
	return queue.Counts{Visible: v, InFlight: f}, ctx.Err()
}

// The simulator plugs into the same ports the real adapters implement.
var (
	_ fleet.Fleet          = simFleet{}
	_ scaling.Retirer      = retirer{}
	_ scaling.QueueCounter = simQueue{}
)
