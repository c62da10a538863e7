// Package decisionlog keeps the scaler's recent decisions as one small JSON
// object in the output store, so a web tier that does not run the scaler (on
// AWS it is a Lambda) can show them on /v1/status and the page exactly as local
// mode does. The scaler Lambda appends with a read-modify-write of the whole
// object; that is safe only because it runs with reserved concurrency 1 (one
// writer). Readers see the old or the new object, never a mix (blob.Store.Put).
package decisionlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/scaling"
)

// Key is the object's key in the output bucket; template.yaml grants the
// scaler s3:GetObject/s3:PutObject and the web tier s3:GetObject on exactly it.
const Key = "scaler/decisions.json"

// Max is how many decisions the object keeps (newest last).
const Max = 50

// MaxBytes bounds the object: Append trims the oldest decisions until it fits,
// and Read refuses a larger object instead of decoding it. A decision encodes
// to about 400 bytes, so Max of them fit with room to spare.
const MaxBytes = 64 << 10

// maxReason bounds one decision's reason and error text in the object.
const maxReason = 512

// doc is the stored object.
type doc struct {
	Decisions []scaling.Decision `json:"decisions"`
}

// Read returns the stored decisions, oldest first; none (and no error) when
// the object does not exist yet.
func Read(ctx context.Context, s blob.Store) ([]scaling.Decision, error) {
	data, _, err := s.Get(ctx, Key)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("decisionlog: read %s: %w", Key, err)
	}
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("decisionlog: %s is %d bytes, over the %d-byte limit", Key, len(data), MaxBytes)
	}
	var d doc
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("decisionlog: %s is not a decision log: %w", Key, err)
	}
	return d.Decisions, nil
}

// Append adds ds (oldest first) to the stored decisions and writes back the
// newest Max that fit in MaxBytes. A stored no-op (a decision that did not
// act, kept as "what the scaler thinks now") is replaced by what follows it,
// so a quiet hour of scheduled invocations costs one entry, and a start is not
// pushed out of the log by the idle minutes after it. When the stored object cannot be read (a
// corrupt object, or a missing one that S3 reports as 403 because the scaler
// may not list the bucket), it starts a fresh log and returns the read error
// joined to any write error only if the write also fails: the log is a view
// for people, never worth a failed scaler invocation.
func Append(ctx context.Context, s blob.Store, ds ...scaling.Decision) (readErr, err error) {
	if len(ds) == 0 {
		return nil, nil
	}
	old, readErr := Read(ctx, s)
	if n := len(old); n > 0 && !old[n-1].Acted() {
		old = old[:n-1]
	}
	all := append(old, ds...)
	for i := range all {
		all[i].Reason = clip(all[i].Reason)
		all[i].Error = clip(all[i].Error)
	}
	if over := len(all) - Max; over > 0 {
		all = all[over:]
	}
	for {
		data, err := json.Marshal(doc{Decisions: all})
		if err != nil {
			return readErr, fmt.Errorf("decisionlog: encode: %w", err)
		}
		if len(data) > MaxBytes && len(all) > 1 {
			all = all[len(all)/4+1:]
			continue
		}
		if _, err := s.Put(ctx, Key, data, "application/json"); err != nil {
			return readErr, fmt.Errorf("decisionlog: write %s: %w", Key, err)
		}
		return readErr, nil
	}
}

func clip(s string) string {
	if len(s) <= maxReason {
		return s
	}
	// Cut on a rune boundary so the JSON stays the text it was.
	cut := maxReason
	for cut > 0 && s[cut]&0xc0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
