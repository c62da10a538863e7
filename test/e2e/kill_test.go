package e2e_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/facefleet/facefleet/apptier"
	"github.com/facefleet/facefleet/internal/blob/fileblob"
	"github.com/facefleet/facefleet/internal/enginetest"
	"github.com/facefleet/facefleet/internal/service"
	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/test/e2ekit"
)

// killServiceEnv names the data folder of TestKillServiceChild, which runs only
// as the child process of TestKillServiceAtRandomPoints.
const killServiceEnv = "FACEFLEET_KILL_SERVICE_DIR"

// killImages is how many distinct uploads the parent cycles through; the
// child's engine double knows each as one face of person seed%5.
const killImages = 50

// TestKillServiceChild runs the embedded service (the engine double, the
// output log on) on the data folder named by killServiceEnv and prints its
// URL; it runs until killed.
func TestKillServiceChild(t *testing.T) {
	dir := os.Getenv(killServiceEnv)
	if dir == "" {
		t.Skip("the child process of TestKillServiceAtRandomPoints")
	}
	eng := enginetest.New()
	for i := range killImages {
		eng.Face(randomPNG(t, uint64(i)), i%5)
	}
	svc, err := service.New(service.Config{DataDir: dir, Analyzer: eng, MaxInstances: 2, ScaleEvery: 50 * time.Millisecond,
		WorkerWait: 100 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(2)
	}
	fmt.Println("http://" + ln.Addr().String())
	_ = svc.Serve(context.Background(), ln)
	os.Exit(3)
}

// TestKillServiceAtRandomPoints: the embedded service, SIGKILLed at a random
// moment of a stream of concurrent course uploads, has stored every result it
// answered (the <stem> object holding the answered name and the request's
// JSON record), and the next service on the folder (replaying the output log
// the dead one left) still has them and answers again. A kill keeps the page
// cache, so this proves the answer follows the store and that replay changes
// nothing acknowledged, not that the disk kept it (fileblob's tests simulate
// losing every unsynced file).
func TestKillServiceAtRandomPoints(t *testing.T) {
	testenv.NoShort(t, "starts child processes")
	dir := t.TempDir()
	imgs := make([][]byte, killImages)
	for i := range imgs {
		imgs[i] = randomPNG(t, uint64(i))
	}
	var all []answered
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillServiceChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), killServiceEnv+"="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		urlc := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if l := sc.Text(); strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "error:") {
					urlc <- l
				}
			}
			close(urlc)
		}()
		var url string
		select {
		case url = <-urlc:
		case <-time.After(60 * time.Second):
		}
		if !strings.HasPrefix(url, "http://") {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("round %d: the child service did not start (%q); stderr:\n%s", round, url, stderr.String())
		}
		e2ekit.WaitFor(t, "the child's web tier", 10*time.Second, func() bool {
			_, err := httpGet(url + "/healthz")
			return err == nil
		})

		// Eight uploaders until the kill; a random moment once answers flow.
		var (
			mu   sync.Mutex
			got  []answered
			stop = make(chan struct{})
			wg   sync.WaitGroup
		)
		client := &http.Client{Timeout: 30 * time.Second}
		for g := range 8 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					seed := uint64((g*7 + i) % killImages)
					stem := fmt.Sprintf("r%d_g%d_%d", round, g, i)
					code, body, err := e2ekit.Upload(client, "POST", url+"/", "inputFile", stem+".png", imgs[seed])
					if err != nil || code != http.StatusOK {
						continue // killed mid-request: not answered, nothing promised
					}
					s, n, ok := strings.Cut(strings.TrimSpace(body), ":")
					if !ok || s != stem {
						t.Errorf("round %d: answer %q for %s", round, body, stem)
						continue
					}
					mu.Lock()
					got = append(got, answered{stem, n})
					mu.Unlock()
				}
			})
		}
		e2ekit.WaitFor(t, "answers before the kill", 30*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(got) >= 5
		})
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		close(stop)
		wg.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v before the kill; stderr:\n%s", round, err, stderr.String())
		}
		t.Logf("round %d: killed after %d answers", round, len(got))
		all = append(all, got...)
		checkStored(t, dir, all, fmt.Sprintf("after round %d's kill", round))
	}
}

// answered is an upload the service answered 200 "<stem>:<name>".
type answered struct{ stem, name string }

// checkStored opens the output store as the next service would (replaying
// the log) and finds every answered result: the <stem> object holding the
// answered name and one JSON record.
func checkStored(t *testing.T, dir string, answers []answered, when string) {
	t.Helper()
	ctx := context.Background()
	s, err := fileblob.New(filepath.Join(dir, "outputs"), fileblob.Options{Log: true})
	if err != nil {
		t.Fatalf("%s: opening the outputs: %v", when, err)
	}
	defer s.Close()
	for _, a := range answers {
		data, _, err := s.Get(ctx, a.stem)
		if err != nil || string(data) != a.name {
			t.Fatalf("%s: %q was answered %q but holds %q, %v", when, a.stem, a.name, data, err)
		}
		recs, err := s.List(ctx, strings.TrimSuffix(apptier.ResultKey(a.stem, ""), ".json"))
		if err != nil || len(recs) != 1 {
			t.Fatalf("%s: %q was answered but has %d records, %v", when, a.stem, len(recs), err)
		}
		if _, _, err := s.Get(ctx, recs[0].Key); err != nil {
			t.Fatalf("%s: record %s: %v", when, recs[0].Key, err)
		}
	}
	if n := s.Replayed(); n > 0 {
		t.Logf("%s: %d log records replayed", when, n)
	}
}
