package e2e_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/facefleet/facefleet/apptier"
	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/internal/apikeys"
	"github.com/facefleet/facefleet/internal/enginetest"
	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/service"
	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/test/e2ekit"
)

// person is one subject and their photos.
type person = e2ekit.Person

// runService runs the embedded service on 127.0.0.1 and drives the whole story:
// enroll 2 photos per person over HTTP, wait for the fleet to be idle at 0, fire
// 100 concurrent course-style uploads with unique names, check every answer, the
// output store and the queues, and see the fleet scale up and back to 0.
func runService(t *testing.T, an apptier.Analyzer, people []person, maxInstances int) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	svc, err := service.New(service.Config{
		DataDir: t.TempDir(), Analyzer: an, MaxInstances: maxInstances,
		BootDelay: 50 * time.Millisecond, IdleTimeout: 700 * time.Millisecond, ScaleEvery: 100 * time.Millisecond,
		VisibilityTimeout: 30 * time.Second, WorkerWait: 200 * time.Millisecond, GalleryCheckEvery: 100 * time.Millisecond,
		Logger: log, // and the default policy: local instances, one per queued request

	})
	if err != nil {
		t.Fatal(err)
	}
	admin := &http.Client{Transport: &apikeys.Transport{Key: e2ekit.AdminKey(t, svc, "e2e", 0, 0)}}
	url, stop := e2ekit.Serve(t, svc)

	live := func() int {
		insts, err := svc.Fleet.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		by := fleet.CountByState(insts)
		return by[fleet.Pending] + by[fleet.Running] + by[fleet.Stopping]
	}
	if n := live(); n != 0 {
		t.Fatalf("%d instances live before any request", n)
	}

	for _, p := range people {
		for i := range 2 {
			code, body, err := e2ekit.Upload(admin, "PUT", url+"/v1/subjects/"+p.Name+"/faces", "image", p.Files[i], p.Photos[i])
			if err != nil || code != 201 {
				t.Fatalf("enroll %s/%s: %d %s", p.Name, p.Files[i], code, body)
			}
		}
	}
	if res, err := admin.Get(url + "/v1/subjects"); err != nil || res.StatusCode != 200 {
		t.Fatalf("subjects: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	if code, _ := post(t, "PUT", url+"/v1/subjects/stranger/faces", "image", people[0].Files[0], people[0].Photos[0]); code != 401 {
		t.Fatalf("enrollment without a key: %d, want 401", code)
	}
	e2ekit.WaitFor(t, "the fleet to go back to 0 after enrollment", 20*time.Second, func() bool { return live() == 0 })

	// Watch the fleet while the burst runs.
	var peak atomic.Int64
	watchCtx, stopWatch := context.WithCancel(context.Background())
	var watch sync.WaitGroup
	watch.Go(func() {
		for watchCtx.Err() == nil {
			if n := int64(live()); n > peak.Load() {
				peak.Store(n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	type upload struct{ file, want string }
	var ups []upload
	var wg sync.WaitGroup
	var mu sync.Mutex
	wrong := 0
	for i := range 100 {
		p := people[i%len(people)]
		k := (i / len(people)) % len(p.Photos)
		file := fmt.Sprintf("u%03d_%s", i, p.Files[k])
		want := fmt.Sprintf("u%03d_%s:%s", i, trimExt(p.Files[k]), p.Name)
		ups = append(ups, upload{file, want})
		wg.Go(func() {
			code, body := post(t, "POST", url+"/", "inputFile", file, p.Photos[k])
			if code != 200 || body != want {
				mu.Lock()
				wrong++
				mu.Unlock()
				t.Errorf("%s: %d %q, want %q", file, code, body, want)
			}
		})
	}
	wg.Wait()
	stopWatch()
	watch.Wait()
	if wrong > 0 {
		t.Fatalf("%d of 100 answers wrong", wrong)
	}
	if peak.Load() != int64(maxInstances) {
		t.Fatalf("peak live instances during a burst of 100: %d, want all %d (local instances cost nothing)", peak.Load(), maxInstances)
	}
	t.Logf("peak live instances during the burst: %d (max %d)", peak.Load(), maxInstances)

	results, err := svc.Outputs.List(context.Background(), "results/")
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 100 {
		t.Fatalf("output store holds %d results, want 100", len(results))
	}
	for _, u := range ups[:5] {
		stem := trimExt(u.file)
		data, _, err := svc.Outputs.Get(context.Background(), stem)
		if err != nil || stem+":"+string(data) != u.want {
			t.Errorf("output %s = %q, %v; want %q", stem, data, err, u.want)
		}
	}
	for name, q := range map[string]queue.Queue{"requests": svc.Requests, "responses": svc.Responses, "dead-letter": svc.DeadLetter} {
		e2ekit.WaitFor(t, name+" queue to be empty", 5*time.Second, func() bool {
			n, err := q.Counts(context.Background())
			return err == nil && n.Visible+n.InFlight+n.Delayed == 0
		})
	}
	e2ekit.WaitFor(t, "the fleet to scale back to 0", 20*time.Second, func() bool { return live() == 0 })
	decisions := svc.Controller.Recent()
	started := 0
	for _, d := range decisions {
		started += d.Start
	}
	if started == 0 {
		t.Fatalf("the controller never started an instance: %+v", decisions)
	}
	stop()
}

func trimExt(f string) string { return f[:len(f)-len(filepath.Ext(f))] }

func TestEndToEndWithEngineDouble(t *testing.T) {
	eng := enginetest.New()
	var people []person
	for p := range 5 {
		pp := person{Name: name(p)}
		for k := range 5 {
			img := randomPNG(t, uint64(100+p*10+k))
			eng.Face(img, p)
			pp.Files = append(pp.Files, fmt.Sprintf("%s%d.png", pp.Name, k+1))
			pp.Photos = append(pp.Photos, img)
		}
		people = append(people, pp)
	}
	eng.SetDelay(20 * time.Millisecond)
	runService(t, eng, people, 4)
}

// TestEndToEndRealEngine is the full story with the real engine and the shared
// dataset of 5 people x 5 photos.
func TestEndToEndRealEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("real engine end to end: skipped with -short")
	}
	models, lib := testenv.Models(t), testenv.ORTLib(t)
	people := e2ekit.LoadFaces(t, 2)
	if len(people) != 5 {
		t.Fatalf("found %d people in the shared faces, want 5", len(people))
	}
	eng, err := engine.New(engine.Options{ModelDir: models, LibraryPath: lib, IntraOpThreads: 1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	runService(t, eng, people, 3)
}

// A burst from zero gets the whole local fleet from the web tier's nudges, well
// before the scaler's next tick (an hour away here): local instances cost
// nothing, so the default policy starts one per queued request up to the cap.
func TestBurstFromZeroFillsTheLocalFleetAtOnce(t *testing.T) {
	const maxInstances = 3
	eng := enginetest.New()
	svc, err := service.New(service.Config{DataDir: t.TempDir(), Analyzer: eng, MaxInstances: maxInstances,
		ScaleEvery: time.Hour, WorkerWait: 100 * time.Millisecond, IdleTimeout: time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	url, stop := e2ekit.Serve(t, svc)
	defer stop()
	release := make(chan struct{})
	var holding atomic.Int64
	var wg sync.WaitGroup
	for i := range 2 * maxInstances {
		img := randomPNG(t, uint64(100+i))
		eng.On(img, func(ctx context.Context) (*engine.Result, error) {
			holding.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return &engine.Result{Width: 32, Height: 32}, nil
		})
		wg.Go(func() {
			if code, body := post(t, "POST", url+"/", "inputFile", fmt.Sprintf("b%d.png", i), img); code != 200 || !strings.HasPrefix(body, fmt.Sprintf("b%d:", i)) {
				t.Errorf("b%d: %d %q", i, code, body)
			}
		})
	}
	running := func() int {
		insts, err := svc.Fleet.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return fleet.CountByState(insts)[fleet.Running]
	}
	took := e2ekit.WaitFor(t, "every local instance to run", 10*time.Second, func() bool { return running() == maxInstances })
	e2ekit.WaitFor(t, "every instance to hold an image", 10*time.Second, func() bool { return holding.Load() == maxInstances })
	t.Logf("fleet full %v after the burst began", took)
	close(release)
	wg.Wait()
}
