package e2ekit

import (
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/facefleet/facefleet/loadgen"
)

// Upload sends data as the multipart file field (named filename) and returns the
// status and body. It reports errors rather than failing the test, so it can run
// on goroutines other than the test's.
func Upload(client *http.Client, method, url, field, filename string, data []byte) (int, string, error) {
	b, contentType, err := loadgen.MultipartBody(field, filename, data)
	if err != nil {
		return 0, "", err
	}
	req, err := http.NewRequest(method, url, b)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", contentType)
	res, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, string(body), fmt.Errorf("%s %s: read the answer: %w", method, url, err)
	}
	return res.StatusCode, string(body), nil
}

// WaitFor polls cond until it holds, failing the test after d; it returns how long
// that took.
func WaitFor(t testing.TB, what string, d time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}
