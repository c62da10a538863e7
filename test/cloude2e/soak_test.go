package cloude2e_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/apikeys"
	"github.com/facefleet/facefleet/internal/awstest"
	"github.com/facefleet/facefleet/internal/blob/s3blob"
	"github.com/facefleet/facefleet/internal/queue/sqsqueue"
	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/test/e2ekit"
)

// soakFlat is how much a process's resident memory may grow from the end of the
// second tenth of the run to the end of the last: 10%.
const soakFlat = 1.10

// TestSoak is the cloud-mode rig under a long steady load: fauxqs queues and
// buckets, one real webtier and two real apptier processes, every person enrolled
// with 2 photos, then N uploads of their other photos, 8 at a time. Every answer
// must be exactly `<file stem>:<person>`, every queue must drain, no process may
// exit, and each tier process's VmRSS (web tier, both workers), sampled at the
// end of every tenth of the run, must end within 10% of its value at the end of
// the second tenth (the first tenth is warm-up: arenas, pools and caches fill).
// fauxqs's is sampled and reported too, but not held flat: it keeps every
// object in memory, and each upload leaves its image and result in the buckets.
// N is FACEFLEET_SOAK_N (default 300; `make soak` runs 10,000).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak runs real processes and the real engine; skipped with -short")
	}
	n := countFromEnv(t, "FACEFLEET_SOAK_N", 300, 10, " (the run is sampled at each tenth)")
	s := awstest.Need(t, faux)
	testenv.Models(t) // skip (or fail) before building when the engine's files are absent
	testenv.ORTLib(t)
	people := e2ekit.LoadFaces(t, enrollEach+1)
	bin := testenv.Facefleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n/2)*time.Second+5*time.Minute)
	defer cancel()

	d := newDeployment(ctx, t, s, 30*time.Second, 3, 3)
	sqsc, reqQ, respQ, env := d.clients.SQS(), d.reqQ, d.respQ, d.env

	var all procGroup
	defer all.stopAll(t, 10*time.Second)
	var apps []*proc
	for _, name := range []string{"apptier-1", "apptier-2"} {
		p, err := all.start(t, name, bin, env, "apptier", "-instance-id", name, "-self-stop", "none", "-idle-timeout", "0s", "-worker-wait", "1s")
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		apps = append(apps, p)
	}
	port := freePort(t)
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	web := startWebTier(t, &all, "webtier", bin, env, port, 30*time.Second)
	const concurrency = 8
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}

	// Enroll the first photos of each person, with an admin key the CLI made.
	keyCmd := exec.Command(bin, "keys", "create", "-role", "admin", "-name", "soak")
	keyCmd.Env = env
	keyOut, err := keyCmd.Output()
	if err != nil {
		t.Fatalf("facefleet keys create: %v", err)
	}
	admin := &http.Client{Timeout: 2 * time.Minute, Transport: &apikeys.Transport{Key: strings.TrimSpace(string(keyOut))}}
	for _, p := range people {
		for i := range enrollEach {
			code, body, err := e2ekit.Upload(admin, "PUT", url+"/v1/subjects/"+p.Name+"/faces", "image", p.Files[i], p.Photos[i])
			if err != nil || code != http.StatusCreated {
				t.Fatalf("enroll %s/%s: %d %q %v", p.Name, p.Files[i], code, body, err)
			}
		}
	}

	// The watched processes: every tier process, and fauxqs.
	names := []string{"web", "app1", "app2", "fauxqs"}
	pids := []int{web.cmd.Process.Pid, apps[0].cmd.Process.Pid, apps[1].cmd.Process.Pid, s.PID()}
	// rss[k][j] is process j's VmRSS in KiB at the end of tenth k+1.
	rss := make([][]int64, 10)
	var sampleMu sync.Mutex
	sample := func(k int) {
		row := make([]int64, len(pids))
		for j, pid := range pids {
			kb, err := vmRSS(pid)
			if err != nil {
				t.Errorf("%s (pid %d) at tenth %d: %v", names[j], pid, k+1, err)
			}
			row[j] = kb
		}
		sampleMu.Lock()
		rss[k] = row
		sampleMu.Unlock()
	}

	var next, done, wrong atomic.Int64
	var uploads sync.WaitGroup
	start := time.Now()
	for range concurrency {
		uploads.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				p := people[i%len(people)]
				k := enrollEach + (i/len(people))%(len(p.Photos)-enrollEach) // never an enrolled photo
				file := fmt.Sprintf("soak%05d_%s", i, p.Files[k])
				want := fmt.Sprintf("soak%05d_%s:%s", i, strings.TrimSuffix(p.Files[k], filepath.Ext(p.Files[k])), p.Name)
				code, body, err := e2ekit.Upload(client, "POST", url+"/", "inputFile", file, p.Photos[k])
				if err != nil || code != http.StatusOK || body != want {
					if wrong.Add(1) <= 10 {
						t.Errorf("%s: %d %q %v; want %q", file, code, body, err, want)
					}
				}
				// Each tenth's end is sampled by the upload that completes it.
				if c := int(done.Add(1)); c%(n/10) == 0 && c/(n/10) <= 10 {
					sample(c/(n/10) - 1)
				}
			}
		})
	}
	uploads.Wait()
	wall := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("the soak ran out of time after %d of %d uploads", done.Load(), n)
	}

	for _, u := range []string{reqQ.URL, reqQ.DLQURL, respQ.URL, respQ.DLQURL} {
		q, err := sqsqueue.New(sqsc, u, sqsqueue.Options{})
		if err != nil {
			t.Fatal(err)
		}
		e2ekit.WaitFor(t, u+" to drain", time.Minute, func() bool {
			c, err := q.Counts(ctx)
			return err == nil && c.Visible+c.InFlight+c.Delayed == 0
		})
	}
	for _, p := range append(apps, web) {
		select {
		case <-p.done:
			t.Errorf("%s exited during the soak: %v", p.name, p.err)
		default:
		}
	}

	// fauxqs keeps every object in memory, and course-style uploads keep their
	// input image (and a result) in the buckets by design, so its RSS grows with
	// what is stored: it is reported beside the bytes stored, not held flat.
	var stored int64
	for _, b := range []string{d.inBucket, d.outBucket} {
		st, err := s3blob.New(d.clients.S3(), b)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := st.List(ctx, "")
		if err != nil {
			t.Fatalf("list bucket %s: %v", b, err)
		}
		for _, o := range objs {
			stored += o.Size
		}
	}
	var parts []string
	for j, name := range names {
		second, last := rss[1][j], rss[9][j]
		parts = append(parts, fmt.Sprintf("%s %.0f->%.0f MiB", name, float64(second)/1024, float64(last)/1024))
		if name == "fauxqs" {
			parts[j] += fmt.Sprintf(" (holds %.0f MiB of objects; not asserted)", float64(stored)/(1<<20))
			continue
		}
		if second > 0 && float64(last) > soakFlat*float64(second) {
			var series []string
			for k := range rss {
				series = append(series, strconv.FormatInt(rss[k][j]/1024, 10))
			}
			t.Errorf("%s's RSS grew %.0f%% from the second tenth to the last (per tenth, MiB: %s); want at most %.0f%%",
				name, 100*(float64(last)/float64(second)-1), strings.Join(series, " "), 100*(soakFlat-1))
		}
	}
	verdict := "ok"
	if t.Failed() {
		verdict = "FAIL"
	}
	summary := fmt.Sprintf("soak: %d requests in %s (%.1f/s), %d wrong or failed, queues drained; rss (end of 2nd tenth -> end of run) %s; %s",
		n, wall.Round(time.Second), float64(n)/wall.Seconds(), wrong.Load(), strings.Join(parts, ", "), verdict)
	fmt.Println(summary)
	t.Log(summary)
}

// vmRSS reads a process's resident set size in KiB from /proc/<pid>/status.
func vmRSS(pid int) (int64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("no process id")
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read its memory: %w (did it exit?)", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", rest, err)
			}
			return kb, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read /proc/%d/status: %w", pid, err)
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS line (a zombie?)", pid)
}

// countFromEnv is the request count from the environment variable name, def
// when it is unset; a value that is not a whole number of at least least fails
// the test (why, when given, says what needs the least).
func countFromEnv(t *testing.T, name string, def, least int, why string) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < least {
		t.Fatalf("%s=%q: want a whole number of at least %d%s", name, s, least, why)
	}
	return n
}
