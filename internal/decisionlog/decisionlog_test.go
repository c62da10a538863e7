package decisionlog

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/blob/memblob"
	"github.com/facefleet/facefleet/scaling"
)

func TestReadMissingIsEmpty(t *testing.T) {
	got, err := Read(context.Background(), memblob.New())
	if err != nil || got != nil {
		t.Fatalf("Read of no object = %v, %v; want none, no error", got, err)
	}
}

func TestReadRefusesOversizeAndGarbage(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		data []byte
		want string
	}{
		{[]byte(strings.Repeat(" ", MaxBytes+1)), "over the"},
		{[]byte("not json"), "not a decision log"},
	} {
		s := memblob.New()
		if _, err := s.Put(ctx, Key, tc.data, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(ctx, s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Read = %v, want an error saying %q", err, tc.want)
		}
		// Append starts afresh and says why.
		readErr, err := Append(ctx, s, scaling.Decision{Start: 1, Reason: "r"})
		if err != nil || readErr == nil {
			t.Errorf("Append over a bad object = %v, %v; want the read error and a write", readErr, err)
		}
		if got, err := Read(ctx, s); err != nil || len(got) != 1 {
			t.Errorf("after Append: %v, %v", got, err)
		}
	}
}

func TestAppendClipsAndBounds(t *testing.T) {
	ctx := context.Background()
	s := memblob.New()
	now := time.Now()
	var ds []scaling.Decision
	for i := range Max + 5 {
		ds = append(ds, scaling.Decision{Observation: scaling.Observation{Now: now.Add(time.Duration(i) * time.Second)}, Start: i,
			Reason: strings.Repeat("é", 5000), Error: strings.Repeat("x", 5000)})
	}
	if readErr, err := Append(ctx, s, ds...); readErr != nil || err != nil {
		t.Fatal(readErr, err)
	}
	_, attrs, err := s.Get(ctx, Key)
	if err != nil || attrs.Size > MaxBytes {
		t.Fatalf("object %d bytes, %v; limit %d", attrs.Size, err, MaxBytes)
	}
	got, err := Read(ctx, s)
	if err != nil || len(got) == 0 || len(got) > Max {
		t.Fatalf("read %d, %v", len(got), err)
	}
	if last := got[len(got)-1]; last.Start != Max+4 || len(last.Reason) > maxReason+3 || !strings.HasSuffix(last.Reason, "…") {
		t.Errorf("newest = start %d, reason %d bytes; want the newest, clipped", last.Start, len(last.Reason))
	}
	for _, d := range got {
		if !strings.HasPrefix(d.Reason, "é") || strings.ContainsRune(d.Reason, '\uFFFD') {
			t.Fatal("reason clipped inside a rune")
		}
	}
}

// Idle invocations each append their no-op; only the newest is kept, so the
// start before them survives any number of quiet minutes.
func TestAppendKeepsOneNoOpAfterTheLastAction(t *testing.T) {
	ctx := context.Background()
	s := memblob.New()
	now := time.Now()
	at := func(i int) scaling.Observation {
		return scaling.Observation{Now: now.Add(time.Duration(i) * time.Minute)}
	}
	if _, err := Append(ctx, s, scaling.Decision{Observation: at(0), Start: 2, Reason: "burst"}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3*Max; i++ {
		if _, err := Append(ctx, s, scaling.Decision{Observation: at(i), Reason: "idle"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Append(ctx, s, scaling.Decision{Observation: at(3*Max + 1), Error: "sqs: throttled"}, scaling.Decision{Observation: at(3*Max + 2), Reason: "idle"}); err != nil {
		t.Fatal(err)
	}
	got, err := Read(ctx, s)
	if err != nil || len(got) != 3 || got[0].Start != 2 || got[1].Error == "" || got[2].Reason != "idle" || !got[2].Observation.Now.Equal(at(3*Max+2).Now) {
		t.Fatalf("log = %+v, %v; want the start, the failure and the newest no-op", got, err)
	}
}
