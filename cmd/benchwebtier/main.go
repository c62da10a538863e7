// Command benchwebtier measures the web tier's memory under concurrent large
// uploads (make bench-webtier): N clients upload an S-byte image at once to one
// web tier and wait for their answers, which a fake app tier sends after -hold;
// a client answered 503 retries after its Retry-After. The web tier runs in a
// child process (this binary with -serve) on 127.0.0.1 with the in-process queue
// and a file input store, so the clients' memory does not count: its peak RSS
// (VmHWM) is printed with the outcome, and the exit status is non-zero when it
// exceeds -max-rss or any upload failed.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/facefleet/facefleet/internal/blob/fileblob"
	"github.com/facefleet/facefleet/internal/blob/memblob"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/queue"
	"github.com/facefleet/facefleet/internal/queue/memqueue"
	"github.com/facefleet/facefleet/webtier"
)

func main() {
	var (
		serve   = flag.Bool("serve", false, "internal: run the web tier and the fake app tier (the child process)")
		uploads = flag.Int("uploads", 200, "uploads, all started at once")
		size    = flag.Int("size", 8<<20, "bytes per uploaded image")
		hold    = flag.Duration("hold", 2*time.Second, "the fake app tier answers this long after it receives a request")
		maxRSS  = flag.Int64("max-rss", 1536<<20, "target: the web tier's peak RSS in bytes (1.5 GiB)")
	)
	flag.Parse()
	var err error
	if *serve {
		err = runServer(*hold)
	} else {
		err = runClients(*uploads, *size, *hold, *maxRSS)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchwebtier:", err)
		os.Exit(1)
	}
}

// runServer serves one web tier until stdin closes; it prints its address first.
func runServer(hold time.Duration) error {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	dir, err := os.MkdirTemp("", "benchwebtier-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	in, err := fileblob.New(dir, fileblob.Options{NoSync: true})
	if err != nil {
		return err
	}
	dlq, _ := memqueue.New(memqueue.Options{Name: "dlq"})
	req, err := memqueue.New(memqueue.Options{Name: "requests", DeadLetter: dlq, MaxReceiveCount: 3, MaxMessageSize: protocol.MaxRequestBytes})
	if err != nil {
		return err
	}
	resp, err := memqueue.New(memqueue.Options{Name: "responses", MaxMessageSize: protocol.MaxResponseBytes})
	if err != nil {
		return err
	}
	srv, err := webtier.New(webtier.Options{
		Requests: req, Responses: resp, RequestDLQ: dlq, Inputs: in, Outputs: memblob.New(),
		Limits:   webtier.Limits{MaxBodyBytes: 10 << 20, MaxPending: 2000, RequestTimeout: 5 * time.Minute},
		PollWait: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	var wg sync.WaitGroup
	wg.Go(func() { fakeAppTier(ctx, req, resp, in, hold) })
	err = srv.Serve(ctx, ln)
	cancel()
	wg.Wait()
	return err
}

// fakeAppTier answers every request after hold and deletes its input (so the
// disk holds only the waiting uploads).
func fakeAppTier(ctx context.Context, req, resp *memqueue.Queue, in *fileblob.Store, hold time.Duration) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for ctx.Err() == nil {
		msgs, err := req.Receive(ctx, queue.ReceiveOptions{MaxMessages: 10, WaitTime: 200 * time.Millisecond})
		if err != nil {
			continue
		}
		for _, m := range msgs {
			wg.Go(func() {
				r, err := protocol.DecodeRequest(m.Body)
				if err != nil {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(hold):
				}
				_ = in.Delete(context.WithoutCancel(ctx), r.Key)
				body, _ := protocol.EncodeResponse(protocol.Response{ID: r.ID, Key: r.Key, Stem: protocol.Stem(r.Key), Name: "Unknown"})
				_, _ = resp.Send(ctx, body)
				_ = req.Delete(ctx, m.ReceiptHandle)
			})
		}
	}
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// pngHeader is a 1x1 grey PNG: the web tier reads only the header; the zeros
// after it pad the upload to its size without the client holding it in memory.
var pngHeader = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU\x00\x00\x00\nIDATx\x9cc`\x00\x00\x00\x02\x00\x01H\xaf\xa4q\x00\x00\x00\x00IEND\xaeB`\x82")

func upload(client *http.Client, url, file string, size int) (int, time.Duration, error) {
	head := fmt.Sprintf("--B\r\nContent-Disposition: form-data; name=\"inputFile\"; filename=%q\r\nContent-Type: image/png\r\n\r\n", file)
	const tail = "\r\n--B--\r\n"
	body := io.MultiReader(strings.NewReader(head), strings.NewReader(string(pngHeader)),
		io.LimitReader(zeros{}, int64(size-len(pngHeader))), strings.NewReader(tail))
	req, err := http.NewRequest("POST", url, body)
	if err != nil {
		return 0, 0, err
	}
	req.ContentLength = int64(len(head) + size + len(tail))
	req.Header.Set("Content-Type", "multipart/form-data; boundary=B")
	res, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	retry := time.Duration(0)
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil {
		retry = time.Duration(s) * time.Second
	}
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusServiceUnavailable {
		return res.StatusCode, 0, fmt.Errorf("%s: %d %s", file, res.StatusCode, strings.TrimSpace(string(b)))
	}
	return res.StatusCode, retry, nil
}

func runClients(n, size int, hold time.Duration, maxRSS int64) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.Command(self, "-serve", "-hold", hold.String())
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		return err
	}
	if err := child.Start(); err != nil {
		return err
	}
	defer func() { stdin.Close(); _ = child.Wait() }()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return fmt.Errorf("web tier did not start: %w", err)
	}
	url := "http://" + strings.TrimSpace(addr) + "/"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n}, Timeout: 10 * time.Minute}

	var ok, retries, failed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for {
				code, retry, err := upload(client, url, fmt.Sprintf("u%04d.png", i), size)
				switch {
				case err != nil:
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				case code == http.StatusServiceUnavailable:
					retries.Add(1)
					time.Sleep(max(retry, 100*time.Millisecond))
					continue
				}
				ok.Add(1)
				return
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	hwm, err := peakRSS(child.Process.Pid)
	if err != nil {
		return err
	}
	verdict := "PASS"
	if hwm > maxRSS || failed.Load() > 0 {
		verdict = "FAIL"
	}
	fmt.Printf("%-8s %-9s %-6s %-12s %-7s %-9s %-16s %s\n", "uploads", "size", "ok", "503_retries", "failed", "wall", "web_peak_rss", "target")
	fmt.Printf("%-8d %-9s %-6d %-12d %-7d %-9s %-16s <= %s %s\n", n, mib(int64(size)), ok.Load(), retries.Load(), failed.Load(),
		wall.Round(100*time.Millisecond), mib(hwm), mib(maxRSS), verdict)
	if firstErr != nil {
		return fmt.Errorf("first failure: %w", firstErr)
	}
	if verdict == "FAIL" {
		return fmt.Errorf("web tier peak RSS %s over the %s target", mib(hwm), mib(maxRSS))
	}
	return nil
}

// peakRSS reads a process's VmHWM (peak resident set) from /proc.
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("peak RSS: VmHWM %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("peak RSS: no VmHWM in /proc/%d/status", pid)
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
