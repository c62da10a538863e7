// Package ec2fleet is the fleet port on Amazon EC2 (aws-sdk-go-v2): the pool is
// every non-terminated instance carrying a tag (TagKey=TagValue); new instances come
// from a launch template and carry the tag. It passes fleettest against the fake
// EC2 endpoint in fakeec2 and against moto with IAM enforced.
//
// # Repeated launch decisions are harmless
//
// The scaler Lambda keeps no memory between invocations, two invocations (the
// schedule and the alarm) may run at once, and DescribeInstances lags
// RunInstances/StartInstances by seconds. So a launch must be idempotent by the
// fleet's own state, not by the caller's memory. Each pool member holds a slot
// (tag SlotTagKey = 1..Max). Launch(n) fills the n lowest slots that no visible
// instance holds, one RunInstances per slot, with a ClientToken derived only from
// the pool (TagKey, TagValue, launch template) and the slot number. Two
// controllers that decide from the same (possibly stale) view of the pool compute
// the same tokens, and EC2 answers the second RunInstances with the first one's
// instance instead of launching another; a controller that wants one more
// instance than the other replays the shared slots and launches only the extra
// one. EC2 keeps a token for a long time, so a replayed instance launched more
// than ReplayAfter ago, no longer pending and absent from the pool (terminated)
// means the slot is free again: the token is then salted with that instance's
// id, which every controller derives alike.
package ec2fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/facefleet/facefleet/internal/fleet"
)

// ErrThrottled wraps EC2's RequestLimitExceeded (after the SDK's own retries): the
// caller should back off and try again next tick, not count it as capacity.
var ErrThrottled = errors.New("ec2fleet: EC2 API request rate exceeded")

// Options configure the pool.
type Options struct {
	// LaunchTemplateID is the template new instances are launched from (required
	// for Launch).
	LaunchTemplateID string
	// LaunchTemplateVersion defaults to "$Default".
	LaunchTemplateVersion string
	// TagKey and TagValue mark the pool's instances (required).
	TagKey, TagValue string
	// Max caps the pool's non-terminated instances (required, > 0); Launch never
	// goes above it.
	Max int
	// SlotTagKey names the tag holding an instance's slot (1..Max); default
	// DefaultSlotTagKey.
	SlotTagKey string
	// ReplayAfter: a RunInstances answered with an instance launched longer ago
	// than this (and absent from the pool) is a stale replay of an old slot token;
	// default DefaultReplayAfter. It must exceed DescribeInstances' lag by far.
	ReplayAfter time.Duration
	// Now is the clock (default time.Now); tests pass a virtual one.
	Now func() time.Time
}

// Defaults for Options.
const (
	DefaultSlotTagKey  = "facefleet-slot"
	DefaultReplayAfter = 5 * time.Minute
	// maxReplays bounds the salted retries of one slot.
	maxReplays = 8
)

// Fleet is the EC2-backed pool.
type Fleet struct {
	client *ec2.Client
	opts   Options
}

var _ fleet.Fleet = (*Fleet)(nil)

// New validates opts and returns the fleet.
func New(client *ec2.Client, opts Options) (*Fleet, error) {
	if client == nil {
		return nil, errors.New("ec2fleet: nil EC2 client")
	}
	if opts.TagKey == "" || opts.TagValue == "" {
		return nil, errors.New("ec2fleet: TagKey and TagValue are required to tell the pool's instances apart")
	}
	if opts.Max <= 0 {
		return nil, fmt.Errorf("ec2fleet: Max %d must be positive", opts.Max)
	}
	if opts.LaunchTemplateVersion == "" {
		opts.LaunchTemplateVersion = "$Default"
	}
	if opts.SlotTagKey == "" {
		opts.SlotTagKey = DefaultSlotTagKey
	}
	if opts.SlotTagKey == opts.TagKey {
		return nil, fmt.Errorf("ec2fleet: SlotTagKey %q must differ from TagKey", opts.SlotTagKey)
	}
	if opts.ReplayAfter == 0 {
		opts.ReplayAfter = DefaultReplayAfter
	}
	if opts.ReplayAfter < 0 {
		return nil, fmt.Errorf("ec2fleet: negative ReplayAfter %v", opts.ReplayAfter)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Fleet{client: client, opts: opts}, nil
}

// poolStates are the states that count towards the pool (and the cap).
var poolStates = []string{"pending", "running", "stopping", "stopped", "shutting-down"}

// member is a pool instance with the slot it holds (0: none).
type member struct {
	fleet.Instance
	slot int
}

func (f *Fleet) describe(ctx context.Context, ids []string) ([]fleet.Instance, error) {
	ms, err := f.members(ctx, ids)
	if err != nil {
		return nil, err
	}
	res := make([]fleet.Instance, len(ms))
	for i, m := range ms {
		res[i] = m.Instance
	}
	return res, nil
}

func (f *Fleet) members(ctx context.Context, ids []string) ([]member, error) {
	in := &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: aws.String("tag:" + f.opts.TagKey), Values: []string{f.opts.TagValue}},
		{Name: aws.String("instance-state-name"), Values: poolStates},
	}}
	if len(ids) > 0 {
		in.InstanceIds = ids
	} else {
		in.MaxResults = aws.Int32(1000)
	}
	var res []member
	p := ec2.NewDescribeInstancesPaginator(f.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, wrap("describe instances", err)
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				res = append(res, member{Instance: toInstance(i), slot: f.slotOf(i.Tags)})
			}
		}
	}
	sort.Slice(res, func(i, j int) bool { return res[i].ID < res[j].ID })
	return res, nil
}

// List returns the pool.
func (f *Fleet) List(ctx context.Context) ([]fleet.Instance, error) { return f.describe(ctx, nil) }

// transitionTime reads EC2's "User initiated (2006-01-02 15:04:05 GMT)".
var transitionTime = regexp.MustCompile(`\((\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) GMT\)`)

func toInstance(i types.Instance) fleet.Instance {
	in := fleet.Instance{ID: aws.ToString(i.InstanceId), Since: aws.ToTime(i.LaunchTime)}
	if i.State != nil {
		in.State = fleet.State(i.State.Name)
	}
	if in.State == "shutting-down" {
		in.State = fleet.Stopping
	}
	if in.State == fleet.Stopping || in.State == fleet.Stopped {
		if m := transitionTime.FindStringSubmatch(aws.ToString(i.StateTransitionReason)); m != nil {
			if t, err := time.Parse("2006-01-02 15:04:05", m[1]); err == nil {
				in.Since = t
			}
		}
	}
	return in
}

// checkPool fails with fleet.ErrNotFound unless every id is in the pool, so Start
// and Stop never touch an instance the pool does not own.
func (f *Fleet) checkPool(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return errors.New("ec2fleet: no instance ids given")
	}
	got, err := f.describe(ctx, ids)
	if err != nil {
		return err
	}
	have := make(map[string]bool, len(got))
	for _, in := range got {
		have[in.ID] = true
	}
	var missing []string
	for _, id := range ids {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("ec2fleet: %s not in the pool tagged %s=%s: %w", strings.Join(missing, ", "), f.opts.TagKey, f.opts.TagValue, fleet.ErrNotFound)
	}
	return nil
}

// Start starts stopped instances of the pool.
func (f *Fleet) Start(ctx context.Context, ids ...string) error {
	if err := f.checkPool(ctx, ids); err != nil {
		return err
	}
	if _, err := f.client.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: ids}); err != nil {
		return wrap("start "+strings.Join(ids, ","), err)
	}
	return nil
}

// Retire implements scaling.Retirer: stop after the current job. StopInstances
// shuts the OS down normally; systemd sends the worker SIGTERM and waits up to
// TimeoutStopSec (the template's DrainSeconds) while it finishes the image in hand,
// answers and acknowledges it, so Retire is Stop.
func (f *Fleet) Retire(ctx context.Context, ids ...string) error { return f.Stop(ctx, ids...) }

// Stop stops running or pending instances of the pool.
func (f *Fleet) Stop(ctx context.Context, ids ...string) error {
	if err := f.checkPool(ctx, ids); err != nil {
		return err
	}
	if _, err := f.client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: ids}); err != nil {
		return wrap("stop "+strings.Join(ids, ","), err)
	}
	return nil
}

// Launch brings the pool up by n instances from the launch template. It fails
// with fleet.ErrCapacity, launching nothing, when that would take the pool above
// Max; when EC2 runs out of capacity midway it returns the instances it got
// with the ErrCapacity error (the controller counts what was launched). It fills the n lowest free
// slots with one idempotent RunInstances each (see the package comment), so a
// repeated decision, from this controller or another one with the same stale
// view, gets back the instances already launched instead of new ones. The
// instances returned may therefore include ones another controller launched for
// the same slots moments ago: they are the capacity this decision asked for.
func (f *Fleet) Launch(ctx context.Context, n int) ([]fleet.Instance, error) {
	if n <= 0 {
		return nil, fmt.Errorf("ec2fleet: launch count %d must be positive", n)
	}
	if f.opts.LaunchTemplateID == "" {
		return nil, errors.New("ec2fleet: no LaunchTemplateID configured, cannot launch instances")
	}
	pool, err := f.members(ctx, nil)
	if err != nil {
		return nil, err
	}
	if len(pool)+n > f.opts.Max {
		return nil, fmt.Errorf("ec2fleet: launching %d would make the pool %d, above its cap of %d: %w", n, len(pool)+n, f.opts.Max, fleet.ErrCapacity)
	}
	held := make(map[int]bool, len(pool))
	visible := make(map[string]bool, len(pool))
	for _, m := range pool {
		held[m.slot] = true
		visible[m.ID] = true
	}
	var slots []int
	for k := 1; k <= f.opts.Max && len(slots) < n; k++ {
		if !held[k] {
			slots = append(slots, k)
		}
	}
	if len(slots) < n { // untagged members fill the pool; the count check let it through
		return nil, fmt.Errorf("ec2fleet: only %d of slots 1..%d are free for %d launches: %w", len(slots), f.opts.Max, n, fleet.ErrCapacity)
	}
	res := make([]fleet.Instance, 0, n)
	for _, k := range slots {
		in, err := f.launchSlot(ctx, k, visible)
		if err != nil {
			return res, err
		}
		res = append(res, in)
	}
	return res, nil
}

// SlotToken is the ClientToken of slot k's launch for the pool, salted with the
// ids of stale replays (see the package comment). EC2 allows 64 ASCII characters.
func (f *Fleet) SlotToken(k int, salts ...string) string {
	h := sha256.New()
	for _, part := range append([]string{"facefleet-slot-v1", f.opts.TagKey, f.opts.TagValue, f.opts.LaunchTemplateID,
		f.opts.LaunchTemplateVersion, strconv.Itoa(k)}, salts...) {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return "ff-" + hex.EncodeToString(h.Sum(nil))[:40]
}

// launchSlot runs (or replays) slot k's instance.
func (f *Fleet) launchSlot(ctx context.Context, k int, visible map[string]bool) (fleet.Instance, error) {
	var salts []string
	for range maxReplays {
		tags := []types.Tag{
			{Key: aws.String(f.opts.TagKey), Value: aws.String(f.opts.TagValue)},
			{Key: aws.String(f.opts.SlotTagKey), Value: aws.String(strconv.Itoa(k))},
		}
		out, err := f.client.RunInstances(ctx, &ec2.RunInstancesInput{
			MinCount: aws.Int32(1),
			MaxCount: aws.Int32(1),
			LaunchTemplate: &types.LaunchTemplateSpecification{
				LaunchTemplateId: aws.String(f.opts.LaunchTemplateID),
				Version:          aws.String(f.opts.LaunchTemplateVersion),
			},
			// The volume carries the pool tag too: the scaler's role may only
			// create tagged instances and volumes.
			TagSpecifications: []types.TagSpecification{
				{ResourceType: types.ResourceTypeInstance, Tags: tags},
				{ResourceType: types.ResourceTypeVolume, Tags: tags[:1]},
			},
			ClientToken: aws.String(f.SlotToken(k, salts...)),
		})
		if err != nil {
			return fleet.Instance{}, wrap(fmt.Sprintf("run slot %d's instance from %s", k, f.opts.LaunchTemplateID), err)
		}
		if len(out.Instances) == 0 {
			return fleet.Instance{}, fmt.Errorf("ec2fleet: RunInstances for slot %d answered no instance", k)
		}
		i := out.Instances[0]
		id := aws.ToString(i.InstanceId)
		// A new launch is pending. An old launch of this slot (long ago, not
		// pending, absent from the pool) is a stale replay: its instance left.
		launched := aws.ToTime(i.LaunchTime)
		pending := i.State != nil && i.State.Name == types.InstanceStateNamePending
		if !pending && !launched.IsZero() && f.opts.Now().Sub(launched) > f.opts.ReplayAfter && !visible[id] {
			salts = append(salts, id)
			continue
		}
		return toInstance(i), nil
	}
	return fleet.Instance{}, fmt.Errorf("ec2fleet: slot %d: %d stale replays of its client token in a row; is the pool tag %s=%s shared with another pool?",
		k, maxReplays, f.opts.TagKey, f.opts.TagValue)
}

// slotOf reads the slot tag (0 when absent or malformed).
func (f *Fleet) slotOf(tags []types.Tag) int {
	for _, t := range tags {
		if aws.ToString(t.Key) == f.opts.SlotTagKey {
			if k, err := strconv.Atoi(aws.ToString(t.Value)); err == nil && k > 0 {
				return k
			}
		}
	}
	return 0
}

// wrap maps EC2 error codes onto the fleet errors with an actionable message.
func wrap(op string, err error) error {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return fmt.Errorf("ec2fleet: %s: %w", op, err)
	}
	switch code := apiErr.ErrorCode(); {
	case code == "InsufficientInstanceCapacity" || code == "InstanceLimitExceeded" || code == "VcpuLimitExceeded":
		return fmt.Errorf("ec2fleet: %s: EC2 has no capacity for the request (%s: %s); retry later or try another instance type/zone: %w",
			op, code, apiErr.ErrorMessage(), fleet.ErrCapacity)
	case code == "RequestLimitExceeded" || code == "Throttling" || code == "ThrottlingException":
		return fmt.Errorf("ec2fleet: %s: throttled by EC2 (%s), back off: %w", op, code, ErrThrottled)
	case code == "IncorrectInstanceState" || code == "IncorrectState":
		return fmt.Errorf("ec2fleet: %s: %s: %w", op, apiErr.ErrorMessage(), fleet.ErrIncorrectState)
	case strings.HasPrefix(code, "InvalidInstanceID"):
		return fmt.Errorf("ec2fleet: %s: %s (%s): %w", op, apiErr.ErrorMessage(), code, fleet.ErrNotFound)
	}
	return fmt.Errorf("ec2fleet: %s: %w", op, err)
}
