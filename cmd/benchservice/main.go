// Command benchservice measures the embedded service (the `facefleet up` wiring,
// real engine, real HTTP on 127.0.0.1) against the engine alone on the same cores:
// bursts of 100 and 1000 uploads, latency percentiles, throughput as a fraction
// of the engine's own, and the web tier's overhead per request (total minus queue
// wait minus inference). The last line is
// `throughput_vs_engine=<ratio> overhead_p50_ms=<ms>`.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gofiber/fiber/v2"

	"github.com/facefleet/facefleet/apptier"
	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/apikeys"
	"github.com/facefleet/facefleet/internal/fleet"
	"github.com/facefleet/facefleet/internal/service"
	"github.com/facefleet/facefleet/internal/settings"
	"github.com/facefleet/facefleet/loadgen"
	"github.com/facefleet/facefleet/scaling"
	"github.com/facefleet/facefleet/webtier"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchservice:", err)
		os.Exit(1)
	}
}

type sample struct{ total, queued, inference, overhead, input, fetch, store float64 }

// cpuClock reads this process's CPU time and, from /proc/stat, the whole
// machine's busy time, so a run can say how much CPU others took meanwhile.
type cpuClock struct{ self, machine time.Duration }

func readCPU() cpuClock {
	var c cpuClock
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		c.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	// First line of /proc/stat: cpu user nice system idle iowait irq softirq steal ...
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		var busy int64
		for i, v := range f[1:] {
			var n int64
			fmt.Sscan(v, &n)
			if i != 3 && i != 4 && i < 8 { // not idle, not iowait; no guest columns
				busy += n
			}
		}
		c.machine = time.Duration(busy) * time.Second / 100 // USER_HZ is 100 on Linux
	}
	return c
}

// span is one measured run: its wall time and the CPU this process and everyone
// else used meanwhile.
type span struct {
	wall        time.Duration
	self, other time.Duration
}

func measure(f func()) span {
	c0, t0 := readCPU(), time.Now()
	f()
	wall, c1 := time.Since(t0), readCPU()
	self := c1.self - c0.self
	return span{wall: wall, self: self, other: max(c1.machine-c0.machine-self, 0)}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchservice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	shared := os.Getenv("FACEFLEET_SHARED")
	if shared == "" {
		shared = "../shared"
	}
	faces := fs.String("faces", filepath.Join(shared, "datasets", "faces"), "folder of <name>/<photo> images")
	// -models, -ort-lib, -ort-threads, -no-sync and -max-instances (the app-tier
	// instances, and the engine baseline's goroutines) are the service's settings.
	set := settings.Bind(settings.Bench, fs)
	baseline := fs.Int("baseline", 500, "images each engine-alone run analyses")
	burstsFlag := fs.String("bursts", "100,1000", "comma-separated burst sizes")
	dataParent := fs.String("data", "build", "folder in which the run's data folder (inputs/, outputs/) is made and removed; empty: the system temp folder")
	seqN := fs.Int("sequential", 50, "requests sent one at a time (overhead without contention)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the bursts (service and load generator) to this file")
	blockProfile := fs.String("blockprofile", "", "write block and mutex profiles of the bursts to this file (+ .mutex)")
	inferenceCPU := fs.Bool("inference-cpu", false, "time each analysis's CPU on its own thread, in the bursts and alone, and show the rest of the CPU beside it (locks the thread for each call, which cost the service 0.03-0.06 of the throughput ratio here: for diagnosis, not for the ratios)")
	keep := fs.Bool("keep", false, "leave the run's data folder in place: for runs back to back on a file system like this VM's (ext4 without a journal), where the thousands of files a run deletes make every file create dearer for the next minutes (remove the folders when the series is done)")
	direct := fs.Bool("direct", true, "also run each burst against a bare handler on the same cores (Fiber's multipart upload, Analyze in the handler, as many at once as instances, the gallery match, a JSON answer; no queue, no store, no fleet): the ratio any design that takes the upload on these cores is bounded by")
	if err := fs.Parse(args); err != nil {
		return err
	}
	v, err := set.Resolve(os.Getenv)
	if err != nil {
		return err
	}
	noSync := v.Bool(settings.NoSync)
	instances := v.Int(settings.MaxInstances)
	if instances <= 0 { // as `facefleet up` defaults
		instances = max(1, runtime.NumCPU()/v.Int(settings.ORTThreads))
	}
	var bursts []int
	for _, s := range strings.Split(*burstsFlag, ",") {
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(s), "%d", &n); err != nil || n <= 0 {
			return fmt.Errorf("-bursts: bad size %q", s)
		}
		bursts = append(bursts, n)
	}
	imgs, err := loadgen.LoadImages(*faces, "")
	if err != nil {
		return err
	}
	data := make([][]byte, len(imgs))
	for i, im := range imgs {
		if data[i], err = os.ReadFile(im.Path); err != nil {
			return err
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := engine.New(engine.Options{ModelDir: v.String(settings.Models), LibraryPath: v.String(settings.ORTLib),
		IntraOpThreads: v.Int(settings.ORTThreads), Logger: log})
	if err != nil {
		return err
	}
	defer e.Close()
	eng := &timedEngine{Engine: e, on: *inferenceCPU} // the baseline and the service alike

	// Engine alone: as many goroutines as the service has instances (one ORT
	// thread each), over the same images, in this process. The machine may be
	// shared, so it is measured again after every burst and the ratio uses the
	// mean of the runs before and after it.
	n := max(*baseline, len(imgs))
	var inferAlone float64 // inference CPU per image, ms, in the latest engine-alone run
	engineRun := func() span {
		defer func() { inferAlone = eng.take() }()
		return measure(func() {
			var next atomic.Int64
			var wg sync.WaitGroup
			for range instances {
				wg.Go(func() {
					for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
						if _, err := eng.Analyze(ctx, data[i%len(data)]); err != nil {
							fmt.Fprintln(stderr, "engine:", err)
						}
					}
				})
			}
			wg.Wait()
		})
	}
	engineRun() // warm-up: the first runs of each model are slower
	eBefore := engineRun()
	fmt.Fprintf(stdout, "%d app-tier instances and %d engine goroutines on %d cores (%s/%s, GOMAXPROCS %d), results %s\n",
		instances, instances, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), durability(noSync, v.Bool(settings.OutputLog)))

	// The data folder lives where `facefleet up`'s ./data would (beside the
	// repository), not in /tmp: on the development VM creating a file in /tmp
	// costs 5-10 times the CPU, and the service creates three files per
	// request. (Its ext4 has no journal, so every create scans past the inodes
	// freed in the last minutes, and test runs delete thousands in /tmp; so
	// does this benchmark's own cleanup for the next run: -keep.)
	if *dataParent != "" {
		if err := os.MkdirAll(*dataParent, 0o755); err != nil {
			return fmt.Errorf("-data: %w", err)
		}
	}
	dir, err := os.MkdirTemp(*dataParent, "benchservice-")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Fprintf(stderr, "keeping the data folder %s (-keep)\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	// Our policy as `facefleet up` runs it (local instances: one per queued
	// request, up to the cap), told the measured service time.
	pol, err := scaling.NewPolicyIn(scaling.NameBacklogDrain, scaling.Env{Local: true,
		ServiceTime: time.Duration(float64(instances) * float64(eBefore.wall) / float64(n))})
	if err != nil {
		return err
	}
	svc, err := service.New(service.Config{DataDir: dir, NoSyncOutputs: noSync, NoOutputLog: !v.Bool(settings.OutputLog), Analyzer: eng, MaxInstances: instances, IdleTimeout: time.Minute, Policy: pol,
		WorkerWait: time.Second, Limits: webtier.Limits{MaxPending: 5000, RequestTimeout: 5 * time.Minute}, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- svc.Serve(sctx, ln) }()
	defer func() { cancel(); <-served }()
	url := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1000, MaxConnsPerHost: 1000}}

	// The first answer from zero instances (the fleet starts empty): the
	// scaler's reaction, an instance's start and one analysis. Nobody is
	// enrolled yet, so the name is not checked.
	t0 := time.Now()
	body, err := call(ctx, client, http.MethodPost, url+"/v1/recognize", "first_"+filepath.Base(imgs[0].Path), data[0])
	if err != nil {
		return fmt.Errorf("first request: %w", err)
	}
	first := time.Since(t0)
	var fr webtier.RecognizeResult
	if err := json.Unmarshal(body, &fr); err != nil {
		return err
	}

	// Enroll two photos per person (with an admin key), then warm the fleet up to its size.
	key, _, err := apikeys.NewStore(svc.Outputs, apikeys.Options{}).Create(ctx, apikeys.Admin, "benchservice", 1e6, 1e6)
	if err != nil {
		return err
	}
	admin := &http.Client{Transport: &apikeys.Transport{Key: key, Base: client.Transport}}
	enrolled := map[string]int{}
	for i, im := range imgs {
		if enrolled[im.Expected] >= 2 {
			continue
		}
		enrolled[im.Expected]++
		if _, err := call(ctx, admin, http.MethodPut, url+"/v1/subjects/"+im.Expected+"/faces", filepath.Base(im.Path), data[i]); err != nil {
			return fmt.Errorf("enroll %s: %w", im.Path, err)
		}
	}
	if _, _, err := burst(ctx, client, url, imgs, data, 4*instances, "warm"); err != nil {
		return err
	}

	// One at a time: the overhead of the path itself, without CPU contention.
	var seq, seqIn, seqFetch, seqStore []float64
	for i := range *seqN {
		k := i % len(imgs)
		body, err := call(ctx, client, http.MethodPost, url+"/v1/recognize", fmt.Sprintf("seq_%d_%s", i, filepath.Base(imgs[k].Path)), data[k])
		if err != nil {
			return err
		}
		var r webtier.RecognizeResult
		if err := json.Unmarshal(body, &r); err != nil {
			return err
		}
		seq = append(seq, r.Timings.OverheadMS)
		seqIn, seqFetch, seqStore = append(seqIn, r.Timings.InputMS), append(seqFetch, r.Timings.FetchMS), append(seqStore, r.Timings.StoreMS)
	}
	for _, v := range [][]float64{seq, seqIn, seqFetch, seqStore} {
		slices.Sort(v)
	}

	// The bare handler (-direct): same cores, same engine, same uploads.
	var directURL string
	if *direct {
		u, stop, err := serveDirect(eng, svc.Gallery.Gallery, instances)
		if err != nil {
			return err
		}
		defer stop()
		directURL = u
	}

	stopProfiles, err := startProfiles(*cpuProfile, *blockProfile)
	if err != nil {
		return err
	}
	defer stopProfiles()
	fmt.Fprintf(stdout, "engine alone: %d images, %.1f images/s, %.2f ms CPU per image\n", n, float64(n)/eBefore.wall.Seconds(), ms(eBefore.self)/float64(n))
	fmt.Fprintf(stdout, "first answer from zero instances: %.0f ms (queued %.0f ms, inference %.0f ms)\n", ms(first), fr.Timings.QueuedMS, fr.Timings.InferenceMS)
	fmt.Fprintf(stdout, "sequential %d: overhead p50 %.2f ms p95 %.2f ms (no contention); of which input, fetch, store p50 %.2f, %.2f, %.2f ms\n\n", *seqN,
		loadgen.Percentile(seq, 50), loadgen.Percentile(seq, 95), loadgen.Percentile(seqIn, 50), loadgen.Percentile(seqFetch, 50), loadgen.Percentile(seqStore, 50))
	fmt.Fprintln(stdout, "| burst (from 0 instances) | total s | req/s | engine img/s | throughput vs engine | CPU vs engine | latency p50/p95/p99 ms | inference p50 ms | inference CPU ms/img (alone; -inference-cpu) | other CPU ms/request (alone) | overhead p50/p95/p99 ms | of which input, fetch, store p50 (p95) ms | others' CPU | bare handler vs engine (-direct) |")
	fmt.Fprintln(stdout, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	var ratio, overheadP50 float64
	for _, b := range bursts {
		// Every burst starts from zero instances, as a burst after a quiet spell does.
		if err := stopFleet(ctx, svc.Fleet); err != nil {
			return err
		}
		var samples []sample
		var berr error
		alone, otherAlone := inferAlone, ms(eBefore.self)/float64(n)-inferAlone
		eng.take()
		br := measure(func() { samples, _, berr = burst(ctx, client, url, imgs, data, b, fmt.Sprintf("b%d", b)) })
		if berr != nil {
			return berr
		}
		inferBurst := eng.take()
		var directWall time.Duration
		if directURL != "" {
			if _, directWall, err = burst(ctx, client, directURL, imgs, data, b, fmt.Sprintf("d%d", b)); err != nil {
				return fmt.Errorf("bare handler: %w", err)
			}
		}
		eAfter := engineRun()
		alone = (alone + inferAlone) / 2
		// The engine-alone runs' CPU beside Analyze (the Go runtime's own
		// threads, sysmon first): what "other CPU" is when nothing else runs.
		otherAlone = (otherAlone + ms(eAfter.self)/float64(n) - inferAlone) / 2
		engineRate := (float64(n)/eBefore.wall.Seconds() + float64(n)/eAfter.wall.Seconds()) / 2
		engineCPU := (ms(eBefore.self) + ms(eAfter.self)) / float64(2*n)
		eBefore = eAfter
		rate := float64(b) / br.wall.Seconds()
		ratio = rate / engineRate
		col := func(f func(sample) float64) []float64 {
			v := make([]float64, len(samples))
			for i, s := range samples {
				v[i] = f(s)
			}
			slices.Sort(v)
			return v
		}
		pct := func(v []float64, f string) string {
			return fmt.Sprintf(f+"/"+f+"/"+f, loadgen.Percentile(v, 50), loadgen.Percentile(v, 95), loadgen.Percentile(v, 99))
		}
		tot, ov := col(func(s sample) float64 { return s.total }), col(func(s sample) float64 { return s.overhead })
		inf := col(func(s sample) float64 { return s.inference })
		fetch, store := col(func(s sample) float64 { return s.fetch }), col(func(s sample) float64 { return s.store })
		input := col(func(s sample) float64 { return s.input })
		overheadP50 = loadgen.Percentile(ov, 50)
		// CPU vs engine: engine CPU per image over this process's CPU per
		// request (service and load generator): the throughput ratio the
		// burst would reach on otherwise idle cores with none left idle.
		// Inference CPU is each Analyze's own thread's; other CPU is the
		// process's CPU per request (service, load generator, kernel work
		// done for them) minus that.
		inferCell, otherCell, directCell := "-", "-", "-"
		if directWall > 0 {
			directCell = fmt.Sprintf("%.2f", float64(b)/directWall.Seconds()/engineRate)
		}
		if eng.on {
			inferCell = fmt.Sprintf("%.2f (%.2f)", inferBurst, alone)
			otherCell = fmt.Sprintf("%.2f (%.2f)", ms(br.self)/float64(b)-inferBurst, otherAlone)
		}
		fmt.Fprintf(stdout, "| %d | %.2f | %.1f | %.1f | %.2f | %.2f | %s | %.1f | %s | %s | %s | %.2f (%.1f), %.2f (%.1f), %.2f (%.1f) | %.2f cores | %s |\n",
			b, br.wall.Seconds(), rate, engineRate, ratio, engineCPU/(ms(br.self)/float64(b)), pct(tot, "%.0f"),
			loadgen.Percentile(inf, 50), inferCell, otherCell, pct(ov, "%.2f"), loadgen.Percentile(input, 50), loadgen.Percentile(input, 95),
			loadgen.Percentile(fetch, 50), loadgen.Percentile(fetch, 95), loadgen.Percentile(store, 50), loadgen.Percentile(store, 95),
			br.other.Seconds()/br.wall.Seconds(), directCell)
	}
	fmt.Fprintf(stdout, "\nthroughput_vs_engine=%.3f overhead_p50_ms=%.3f\n", ratio, overheadP50)
	return nil
}

// serveDirect serves POST /v1/recognize with nothing between the upload and
// the engine: Fiber parses the multipart form, the handler analyses the
// image (at most instances at once, as the fleet would), names the largest
// face from the gallery and answers JSON. No queue, no stored input or
// result, no fleet: what is left of the service's work when all of that
// costs nothing.
func serveDirect(eng apptier.Analyzer, current func() *gallery.Gallery, instances int) (url string, stop func(), err error) {
	app := fiber.New(fiber.Config{BodyLimit: 16 << 20, DisableStartupMessage: true})
	slots := make(chan struct{}, instances)
	app.Post("/v1/recognize", func(c *fiber.Ctx) error {
		fh, err := c.FormFile("image")
		if err != nil {
			return fiber.NewError(fiber.StatusBadRequest, err.Error())
		}
		f, err := fh.Open()
		if err != nil {
			return err
		}
		img, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return err
		}
		slots <- struct{}{}
		res, err := eng.Analyze(c.UserContext(), img)
		<-slots
		if err != nil {
			return fiber.NewError(fiber.StatusUnprocessableEntity, err.Error())
		}
		return c.JSON(webtier.RecognizeResult{Name: apptier.Label(current(), res, 0)})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	done := make(chan error, 1)
	go func() { done <- app.Listener(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = app.ShutdownWithTimeout(time.Second); <-done }, nil
}

// stopFleet stops every instance (each finishes its image) and waits until
// none is pending, running or stopping.
func stopFleet(ctx context.Context, f fleet.Fleet) error {
	for deadline := time.Now().Add(time.Minute); ; {
		insts, err := f.List(ctx)
		if err != nil {
			return err
		}
		by := fleet.CountByState(insts)
		if by[fleet.Pending]+by[fleet.Running]+by[fleet.Stopping] == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the fleet did not stop within a minute: %v", by)
		}
		var ids []string
		for _, in := range insts {
			if in.State == fleet.Running {
				ids = append(ids, in.ID)
			}
		}
		if len(ids) > 0 {
			if err := f.Stop(ctx, ids...); err != nil {
				return fmt.Errorf("stopping the fleet before a burst: %w", err)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// durability says how results reach the disk in this run.
func durability(noSync, log bool) string {
	switch {
	case noSync:
		return "not fsynced"
	case log:
		return "durable through the output log (one fdatasync per group of writes)"
	}
	return "fsynced file by file"
}

// timedEngine is the engine with, when on (-inference-cpu), each Analyze's
// CPU time counted on the OS thread that runs it (locked for the call), so a
// burst can say whether inference itself got dearer beside the service or the
// rest of the process costs the difference.
type timedEngine struct {
	*engine.Engine
	on    bool
	cpu   atomic.Int64 // ns
	calls atomic.Int64
}

func (e *timedEngine) Analyze(ctx context.Context, img []byte) (*engine.Result, error) {
	if !e.on {
		return e.Engine.Analyze(ctx, img)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var t0, t1 unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t0)
	r, err := e.Engine.Analyze(ctx, img)
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t1)
	e.cpu.Add(t1.Nano() - t0.Nano())
	e.calls.Add(1)
	return r, err
}

// take returns the mean CPU per call since the last take, and resets.
func (e *timedEngine) take() float64 {
	ns, n := e.cpu.Swap(0), e.calls.Swap(0)
	if n == 0 {
		return 0
	}
	return float64(ns) / float64(n) / 1e6
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// burst fires n concurrent /v1/recognize uploads and checks every name.
func burst(ctx context.Context, client *http.Client, url string, imgs []loadgen.Image, data [][]byte, n int, tag string) ([]sample, time.Duration, error) {
	samples := make([]sample, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		wg.Go(func() {
			k := i % len(imgs)
			name := fmt.Sprintf("%s_%d_%s", tag, i, filepath.Base(imgs[k].Path))
			t0 := time.Now()
			body, err := call(ctx, client, http.MethodPost, url+"/v1/recognize", name, data[k])
			if err != nil {
				errs <- err
				return
			}
			var r webtier.RecognizeResult
			if err := json.Unmarshal(body, &r); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				return
			}
			if r.Name != imgs[k].Expected {
				errs <- fmt.Errorf("%s: got %q, want %q", name, r.Name, imgs[k].Expected)
			}
			samples[i] = sample{total: float64(time.Since(t0).Microseconds()) / 1000, queued: r.Timings.QueuedMS,
				inference: r.Timings.InferenceMS, overhead: r.Timings.OverheadMS, input: r.Timings.InputMS, fetch: r.Timings.FetchMS, store: r.Timings.StoreMS}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if len(all) > 0 {
		return nil, 0, fmt.Errorf("%d of %d failed, first: %w", len(all), n, errors.Join(all[:min(3, len(all))]...))
	}
	return samples, elapsed, nil
}

func call(ctx context.Context, client *http.Client, method, url, filename string, data []byte) ([]byte, error) {
	b, contentType, err := loadgen.MultipartBody("image", filename, data)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, url, b)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	res, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %d %s", method, url, res.StatusCode, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// startProfiles starts the CPU profile and block/mutex sampling; the returned
// func writes them.
func startProfiles(cpu, block string) (func(), error) {
	var cf *os.File
	if cpu != "" {
		f, err := os.Create(cpu)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		cf = f
	}
	if block != "" {
		runtime.SetBlockProfileRate(int(time.Microsecond))
		runtime.SetMutexProfileFraction(5)
	}
	return func() {
		if cf != nil {
			pprof.StopCPUProfile()
			cf.Close()
		}
		if block != "" {
			for name, path := range map[string]string{"block": block, "mutex": block + ".mutex"} {
				if f, err := os.Create(path); err == nil {
					_ = pprof.Lookup(name).WriteTo(f, 0)
					f.Close()
				}
			}
		}
	}, nil
}
