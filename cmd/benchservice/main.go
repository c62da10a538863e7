// Command benchservice measures the embedded service (the `facefleet up` wiring,
// real engine, real HTTP on 127.0.0.1) against the engine alone on the same cores:
// bursts of 100 and 1000 uploads, latency percentiles, throughput as a fraction
// of the engine's own, and the web tier's overhead per request (total minus queue
// wait minus inference). The last line is
// `throughput_vs_engine=<ratio> overhead_p50_ms=<ms>`.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/internal/service"
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

type sample struct{ total, queued, inference, overhead, fetch, store float64 }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("benchservice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	shared := os.Getenv("FACEFLEET_SHARED")
	if shared == "" {
		shared = "../shared"
	}
	faces := fs.String("faces", filepath.Join(shared, "datasets", "faces"), "folder of <name>/<photo> images")
	models := fs.String("models", envOr("FACEFLEET_MODELS", "build/models"), "models folder")
	ortLib := fs.String("ort-lib", envOr("FACEFLEET_ORT_LIB", "build/lib/libonnxruntime.so.1"), "ONNX Runtime library")
	workers := fs.Int("workers", runtime.NumCPU(), "engine goroutines for the baseline (one ORT thread each): the cores both sides get")
	instances := fs.Int("instances", 0, "app-tier instances (0: workers+1, so a core is not idle while one worker waits on the store or the queue)")
	noSync := fs.Bool("no-sync", false, "write results without fsync (as `up -no-sync`)")
	baseline := fs.Int("baseline", 500, "images the engine-alone baseline analyses")
	burstsFlag := fs.String("bursts", "100,1000", "comma-separated burst sizes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *instances <= 0 {
		*instances = *workers + 1
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
	eng, err := engine.New(engine.Options{ModelDir: *models, LibraryPath: *ortLib, IntraOpThreads: 1, Logger: log})
	if err != nil {
		return err
	}
	defer eng.Close()

	// Engine alone: as many goroutines as cores, over the same images. The
	// machine may be shared, so it is measured again around every burst and the
	// ratio uses the mean of the runs before and after it.
	n := max(*baseline, len(imgs))
	engineRun := func() float64 {
		var next atomic.Int64
		var wg sync.WaitGroup
		t0 := time.Now()
		for range *workers {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
					if _, err := eng.Analyze(ctx, data[i%len(data)]); err != nil {
						fmt.Fprintln(stderr, "engine:", err)
					}
				}
			})
		}
		wg.Wait()
		return float64(n) / time.Since(t0).Seconds()
	}
	engineRate := engineRun()
	fmt.Fprintf(stdout, "service: %d instances over the same %d cores\n", *instances, *workers)
	fmt.Fprintf(stdout, "engine alone: %d images, %d goroutines: %.1f images/s (%s/%s, GOMAXPROCS %d)\n", n, *workers, engineRate, runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))

	dir, err := os.MkdirTemp("", "benchservice-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// Our policy sized with the measured service time and a short drain target,
	// so a burst gets the whole fleet (its default optimises billed minutes).
	pol := scaling.NewFacefleet(scaling.FacefleetOptions{ServiceTime: time.Duration(float64(*workers) / engineRate * float64(time.Second)), DrainTarget: time.Second})
	svc, err := service.New(service.Config{DataDir: dir, NoSyncOutputs: *noSync, Analyzer: eng, MaxInstances: *instances, IdleTimeout: time.Minute, Policy: pol,
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

	// Enroll two photos per person, then warm the fleet up to its size.
	enrolled := map[string]int{}
	for i, im := range imgs {
		if enrolled[im.Expected] >= 2 {
			continue
		}
		enrolled[im.Expected]++
		if _, err := call(ctx, client, http.MethodPut, url+"/v1/subjects/"+im.Expected+"/faces", filepath.Base(im.Path), data[i]); err != nil {
			return fmt.Errorf("enroll %s: %w", im.Path, err)
		}
	}
	if _, _, err := burst(ctx, client, url, imgs, data, 4**instances, "warm"); err != nil {
		return err
	}

	// One at a time: the overhead of the path itself, without CPU contention.
	var seq []float64
	for i := range 50 {
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
	}
	slices.Sort(seq)
	fmt.Fprintf(stdout, "sequential 50: overhead p50 %.2f ms p95 %.2f ms (no contention)\n", loadgen.Percentile(seq, 50), loadgen.Percentile(seq, 95))

	var ratio, overheadP50 float64
	for _, b := range bursts {
		samples, elapsed, err := burst(ctx, client, url, imgs, data, b, fmt.Sprintf("b%d", b))
		if err != nil {
			return err
		}
		after := engineRun()
		base := (engineRate + after) / 2
		engineRate = after
		rate := float64(b) / elapsed.Seconds()
		ratio = rate / base
		col := func(f func(sample) float64) []float64 {
			v := make([]float64, len(samples))
			for i, s := range samples {
				v[i] = f(s)
			}
			slices.Sort(v)
			return v
		}
		tot, ov := col(func(s sample) float64 { return s.total }), col(func(s sample) float64 { return s.overhead })
		inf := col(func(s sample) float64 { return s.inference })
		fetch, store := col(func(s sample) float64 { return s.fetch }), col(func(s sample) float64 { return s.store })
		overheadP50 = loadgen.Percentile(ov, 50)
		fmt.Fprintf(stdout, "burst %4d: %.2fs, %.1f req/s = %.2f of the engine (%.1f/s around it); latency p50 %.0f ms p95 %.0f ms p99 %.0f ms; inference p50 %.1f ms; overhead p50 %.2f ms p95 %.2f ms p99 %.2f ms (of which fetch p50 %.2f ms, store p50 %.2f ms)\n",
			b, elapsed.Seconds(), rate, ratio, base, loadgen.Percentile(tot, 50), loadgen.Percentile(tot, 95), loadgen.Percentile(tot, 99),
			loadgen.Percentile(inf, 50), overheadP50, loadgen.Percentile(ov, 95), loadgen.Percentile(ov, 99),
			loadgen.Percentile(fetch, 50), loadgen.Percentile(store, 50))
	}
	fmt.Fprintf(stdout, "throughput_vs_engine=%.3f overhead_p50_ms=%.3f\n", ratio, overheadP50)
	return nil
}

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
				inference: r.Timings.InferenceMS, overhead: r.Timings.OverheadMS, fetch: r.Timings.FetchMS, store: r.Timings.StoreMS}
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
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fw, _ := mw.CreateFormFile("image", filename)
	fw.Write(data)
	mw.Close()
	req, err := http.NewRequestWithContext(ctx, method, url, &b)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
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

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
