package fileblob_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/fileblob"
)

// killChildEnv names the data folder of TestKillChild, which runs only as the
// child process of TestKillAtRandomPoints.
const killChildEnv = "FILEBLOB_KILL_CHILD_DIR"

// killLogEnv set to 1 makes the child open its store with the write-ahead log.
const killLogEnv = "FILEBLOB_KILL_CHILD_LOG"

// payload is the deterministic content of write i of writer g, so the parent can
// tell an intact object from a torn or stale one.
func payload(g, i int) []byte {
	n := 100 + (g*7919+i*104729)%70000
	b := make([]byte, n)
	copy(b, fmt.Sprintf("%d:%d:", g, i))
	for j := len(fmt.Sprintf("%d:%d:", g, i)); j < n; j++ {
		b[j] = byte('a' + (g+i+j)%26)
	}
	return b
}

// TestKillChild writes through the real store from several goroutines and
// reports each write on stdout once Put has returned: "new <key> <g> <i>" for a
// fresh key (in a fresh folder every few writes), "over <key> <g> <i>" for
// the key each writer overwrites, and "cas <key> <g> <i>" for an entry it
// appended to a journal all writers share (PutIfAbsent on the lowest sequence
// number it has not seen taken). It runs until killed.
func TestKillChild(t *testing.T) {
	dir := os.Getenv(killChildEnv)
	if dir == "" {
		t.Skip("the child process of TestKillAtRandomPoints")
	}
	mode := os.Getenv(killLogEnv)
	s, err := fileblob.New(dir, fileblob.Options{Log: mode != "0", WriteBehind: mode == "behind"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	run := os.Getpid()
	var out sync.Mutex
	ack := func(line string) {
		out.Lock()
		defer out.Unlock()
		if _, err := os.Stdout.WriteString(line + "\n"); err != nil {
			os.Exit(3)
		}
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			seq := 0
			for i := 0; ; i++ {
				key := fmt.Sprintf("results/p%d-g%d-%d/r%d.json", run, g, i/4, i)
				if _, err := s.Put(context.Background(), key, payload(g, i), "application/json"); err != nil {
					fmt.Fprintln(os.Stderr, "put:", err)
					os.Exit(4)
				}
				ack(fmt.Sprintf("new %s %d %d", key, g, i))
				key = fmt.Sprintf("stem-p%d-g%d", run, g)
				if _, err := s.Put(context.Background(), key, payload(g, i), "text/plain"); err != nil {
					fmt.Fprintln(os.Stderr, "put:", err)
					os.Exit(4)
				}
				ack(fmt.Sprintf("over %s %d %d", key, g, i))
				for ; ; seq++ {
					key = fmt.Sprintf("journal-p%d/%06d", run, seq)
					_, err := s.PutIfAbsent(context.Background(), key, payload(g, i), "text/plain")
					if errors.Is(err, blob.ErrExists) {
						continue
					}
					if err != nil {
						fmt.Fprintln(os.Stderr, "put-if-absent:", err)
						os.Exit(4)
					}
					break
				}
				ack(fmt.Sprintf("cas %s %d %d", key, g, i))
			}
		})
	}
	wg.Wait()
}

// TestKillAtRandomPoints SIGKILLs a child process writing through the store at
// random moments and checks that every write the child acknowledged (Put
// returned) is present and intact afterwards, that an overwritten key holds the
// last acknowledged version or a later one, and that nothing in the folder is
// corrupt. A kill loses the process, not the machine: the page cache survives,
// so this proves the acknowledgement comes after the rename and that no reader
// ever sees a torn object, not that fsync reached the disk (no test here can cut
// the power).
//
// With the write-ahead log the child's objects are placed before their records
// are appended, so the same checks hold; each new child replays what the last
// one left in the log over the folder, which must change nothing acknowledged.
func TestKillAtRandomPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	t.Run("files", func(t *testing.T) { killAtRandomPoints(t, "0") })
	t.Run("log", func(t *testing.T) { killAtRandomPoints(t, "1") })
	t.Run("log+write-behind", func(t *testing.T) { killAtRandomPoints(t, "behind") })
}

// killAtRandomPoints runs the rounds with the child's store in mode: "0" files
// synced one by one, "1" the log, "behind" the log and write-behind (a killed
// child's held objects exist only in its log, so the parent reads back
// through a store that replays it).
func killAtRandomPoints(t *testing.T, mode string) {
	dir := t.TempDir()
	logEnv := killLogEnv + "=" + mode
	withLog := mode != "0"
	ctx := context.Background()
	for round := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), killChildEnv+"="+dir, logEnv)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines, first := make(chan []string, 1), make(chan struct{})
		go func() {
			var got []string
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				if got = append(got, sc.Text()); len(got) == 1 {
					close(first)
				}
			}
			lines <- got
		}()
		// Once the child writes (its start-up takes a while on a loaded
		// machine), at a random moment among its writes.
		select {
		case <-first:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: the child acknowledged no write in 30 s; stderr:\n%s", round, stderr.String())
		}
		time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		got := <-lines
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child ended with %v before the kill; stderr:\n%s", round, err, stderr.String())
		}
		if withLog {
			// What the next store on the folder does first: replay the log
			// (write-behind: the only copy of objects not written yet).
			s, err := fileblob.New(dir, fileblob.Options{Log: true})
			if err != nil {
				t.Fatalf("round %d: reopening after the kill: %v", round, err)
			}
			t.Logf("round %d: %d log records replayed", round, s.Replayed())
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
		last, appended := map[string]int{}, map[string]string{}
		for _, l := range got {
			f := strings.Fields(l)
			if len(f) != 4 {
				t.Fatalf("round %d: bad line %q", round, l)
			}
			g, _ := strconv.Atoi(f[2])
			i, _ := strconv.Atoi(f[3])
			if f[0] == "over" {
				last[f[1]] = max(last[f[1]], i)
				continue
			}
			if f[0] == "cas" {
				if prev, ok := appended[f[1]]; ok {
					t.Fatalf("round %d: journal entry %q acknowledged to two writers (%s and %s %s)", round, f[1], prev, f[2], f[3])
				}
				appended[f[1]] = f[2] + " " + f[3]
			}
			data, _, err := readBack(ctx, dir, f[1])
			if err != nil {
				t.Fatalf("round %d: acknowledged write %q: %v", round, f[1], err)
			}
			if string(data) != string(payload(g, i)) {
				t.Fatalf("round %d: acknowledged write %q holds %d bytes, not its %d", round, f[1], len(data), len(payload(g, i)))
			}
		}
		for key, i := range last {
			data, _, err := readBack(ctx, dir, key)
			if err != nil {
				t.Fatalf("round %d: overwritten key %q: %v", round, key, err)
			}
			var g, v int
			if _, err := fmt.Sscanf(string(data), "%d:%d:", &g, &v); err != nil || string(data) != string(payload(g, v)) {
				t.Fatalf("round %d: %q is torn (%d bytes)", round, key, len(data))
			}
			if v < i {
				t.Fatalf("round %d: %q holds version %d, older than the acknowledged %d", round, key, v, i)
			}
		}
		t.Logf("round %d: killed after %d acknowledged writes (%d journal appends), all present", round, len(got), len(appended))
	}
	// Nothing the kills left behind is visible as a corrupt object.
	s, err := fileblob.New(dir, fileblob.Options{Log: withLog})
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if _, _, err := s.Get(ctx, a.Key); err != nil {
			t.Fatalf("after the kills: %v", err)
		}
	}
}

func readBack(ctx context.Context, dir, key string) ([]byte, blob.Attributes, error) {
	s, err := fileblob.New(dir)
	if err != nil {
		return nil, blob.Attributes{}, err
	}
	return s.Get(ctx, key)
}
