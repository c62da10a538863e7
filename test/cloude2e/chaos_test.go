package cloude2e_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/awstest"
	"github.com/facefleet/facefleet/internal/blob/s3blob"
	"github.com/facefleet/facefleet/internal/queue/sqsqueue"
	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/test/e2ekit"
)

// TestChaos is the cloud-mode rig under faults: fauxqs queues and buckets, real
// apptier processes of which a random one is SIGKILLed (and replaced) every 2-4 s,
// and one web tier restarted (SIGTERM, a new process on the same port) halfway
// through N uploads. Every upload must be answered once with its own stem, or fail
// cleanly: 502 with its failure record, or 504 with its result landing later. No
// upload may be lost, and every queue drains. N is FACEFLEET_CHAOS_N (default 20;
// `make chaos` runs 1000).
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the chaos rig runs real processes and the real engine; skipped with -short")
	}
	n := countFromEnv(t, "FACEFLEET_CHAOS_N", 20, 1, "")
	s := awstest.Need(t, faux)
	testenv.Models(t) // skip (or fail) before building when the engine's files are absent
	testenv.ORTLib(t)
	people := e2ekit.LoadFaces(t, 1)
	bin := testenv.Facefleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(30+n/2)*time.Second+5*time.Minute)
	defer cancel()

	// A short visibility brings a killed worker's image back soon; 5 receives
	// let it survive a few kills before the dead-letter queue takes it.
	d := newDeployment(ctx, t, s, 5*time.Second, 5, 0)
	sqsc, reqQ, respQ, env := d.clients.SQS(), d.reqQ, d.respQ, d.env

	var (
		mu    sync.Mutex
		apps  []*proc
		all   procGroup
		boots int
	)
	startApp := func() {
		mu.Lock()
		boots++
		name := fmt.Sprintf("apptier-%d", boots)
		mu.Unlock()
		p, err := all.start(t, name, bin, env, "apptier", "-instance-id", name, "-self-stop", "none", "-idle-timeout", "0s", "-worker-wait", "1s")
		if err != nil {
			t.Errorf("start %s: %v", name, err)
			return
		}
		mu.Lock()
		apps = append(apps, p)
		mu.Unlock()
	}
	port := freePort(t)
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	// One connection per upload: a restart then refuses (or, in the instant the
	// old listener closes, resets) a connection before any request on it is
	// read, and the client sends again; no idle keep-alive connection is cut.
	client := &http.Client{Timeout: 3 * time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	startWeb := func(name string) *proc { return startWebTier(t, &all, name, bin, env, port, 30*time.Second) }
	defer all.stopAll(t, 5*time.Second)
	startApp()
	startApp()
	web := startWeb("webtier-1")

	// The chaos: a random worker SIGKILLed every 2-4 s, and a new one started.
	chaosCtx, stopChaos := context.WithCancel(ctx)
	var kills atomic.Int64
	var chaos sync.WaitGroup
	chaos.Go(func() {
		for {
			select {
			case <-chaosCtx.Done():
				return
			case <-time.After(2*time.Second + rand.N(2*time.Second)):
			}
			mu.Lock()
			var victim *proc
			if len(apps) > 0 {
				i := rand.N(len(apps))
				victim = apps[i]
				apps = append(apps[:i], apps[i+1:]...)
			}
			mu.Unlock()
			if victim != nil {
				_ = victim.cmd.Process.Signal(syscall.SIGKILL)
				<-victim.done
				kills.Add(1)
			}
			startApp()
		}
	})

	type result struct {
		file, want string
		code       int
		body       string
		err        error
	}
	results := make([]result, n)
	var next, sent, resent atomic.Int64
	restarted := make(chan struct{})
	var uploads sync.WaitGroup
	start := time.Now()
	for range 8 {
		uploads.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				p := people[i%len(people)]
				stem := fmt.Sprintf("chaos%05d", i)
				r := result{file: stem + ".png", want: stem + ":"}
				for {
					r.code, r.body, r.err = e2ekit.Upload(client, "POST", url+"/", "inputFile", r.file, p.Photos[i%len(p.Photos)])
					// Refused or reset while the web tier restarts: sent again.
					if r.err != nil && (errors.Is(r.err, syscall.ECONNREFUSED) || errors.Is(r.err, syscall.ECONNRESET)) && ctx.Err() == nil {
						resent.Add(1)
						time.Sleep(200 * time.Millisecond)
						continue
					}
					break
				}
				results[i] = r
				if sent.Add(1) == int64(n/2) {
					close(restarted)
				}
			}
		})
	}
	// Halfway: the web tier restarts (graceful: callers in flight get their
	// answers; new connections are refused until the new one listens).
	select {
	case <-restarted:
	case <-ctx.Done():
	}
	web.stop(90 * time.Second)
	if web.err != nil {
		t.Errorf("web tier exited with %v on SIGTERM", web.err)
	}
	startWeb("webtier-2")
	uploads.Wait()
	stopChaos()
	chaos.Wait()
	wall := time.Since(start)

	outs, err := s3blob.New(d.clients.S3(), d.outBucket)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[int]int{}
	for _, r := range results {
		counts[r.code]++
		stem := strings.TrimSuffix(r.file, ".png")
		switch {
		case r.err != nil:
			t.Errorf("%s: lost: %v", r.file, r.err)
		case r.code == http.StatusOK:
			if !strings.HasPrefix(r.body, r.want) || strings.Count(r.body, ":") != 1 {
				t.Errorf("%s: answer %q is not its own (want %q<name>)", r.file, r.body, r.want)
			}
		case r.code == http.StatusBadGateway:
			if recs, err := outs.List(ctx, "failed/"+stem+"/"); err != nil || len(recs) == 0 {
				t.Errorf("%s: 502 without a failure record (%v)", r.file, err)
			}
		case r.code == http.StatusGatewayTimeout:
			e2ekit.WaitFor(t, r.file+"'s result after its 504", 2*time.Minute, func() bool {
				_, err := outs.Head(ctx, stem)
				return err == nil
			})
		default:
			t.Errorf("%s: %d %q", r.file, r.code, r.body)
		}
	}
	for _, q := range []string{reqQ.URL, respQ.URL, reqQ.DLQURL} {
		sq, err := sqsqueue.New(sqsc, q, sqsqueue.Options{})
		if err != nil {
			t.Fatal(err)
		}
		e2ekit.WaitFor(t, q+" to drain", 2*time.Minute, func() bool {
			c, err := sq.Counts(ctx)
			return err == nil && c.Visible+c.InFlight+c.Delayed == 0
		})
	}
	summary := fmt.Sprintf("chaos: %d uploads in %s: %d answered, %d 502, %d 504, %d lost or wrong; %d workers SIGKILLed, 1 web-tier restart (%d uploads sent again after a refused connection); queues drained",
		n, wall.Round(time.Second), counts[200], counts[502], counts[504], n-counts[200]-counts[502]-counts[504], kills.Load(), resent.Load())
	fmt.Println(summary)
	t.Log(summary)
}
