// Package loadgen is the course's workload generator done well: it uploads images
// concurrently to a web tier's POST / (multipart field inputFile), checks each
// "<stem>:<name>" answer against the expected names and summarises correctness and
// latency.
package loadgen

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/facefleet/facefleet/internal/stats"
)

// Image is one file to upload and the name it should get ("" = unchecked).
type Image struct {
	Path     string
	Expected string
}

// Options configure a run.
type Options struct {
	// URL is the web tier's base URL (POST goes to URL itself, as the course's
	// generator does).
	URL    string
	Images []Image
	// N is the number of uploads (0: one per image). Beyond len(Images) the
	// images repeat under unique names (<stem>__<round><ext>) so that no two
	// uploads share a key.
	N int
	// Concurrency is how many uploads are in flight (default 10).
	Concurrency int
	// Timeout bounds one upload (default 2 min).
	Timeout time.Duration
	Client  *http.Client
	// OnDone is called after each upload (for a progress bar); may be nil.
	OnDone func()
}

// Failure describes one wrong or failed upload.
type Failure struct {
	File   string `json:"file"`
	Status int    `json:"status,omitempty"`
	Want   string `json:"want,omitempty"`
	Got    string `json:"got"`
}

// Summary is the outcome of a run.
type Summary struct {
	Total     int     `json:"total"`
	Correct   int     `json:"correct"`
	Wrong     int     `json:"wrong"`
	Failed    int     `json:"failed"`
	Unchecked int     `json:"unchecked"`
	ElapsedS  float64 `json:"elapsed_s"`
	PerSecond float64 `json:"per_second"`
	P50MS     float64 `json:"p50_ms"`
	P95MS     float64 `json:"p95_ms"`
	P99MS     float64 `json:"p99_ms"`
	MaxMS     float64 `json:"max_ms"`
	// Failures lists the first 20 wrong or failed uploads.
	Failures []Failure `json:"failures,omitempty"`
}

// OK reports whether every upload was answered correctly.
func (s *Summary) OK() bool { return s.Wrong == 0 && s.Failed == 0 }

// LoadImages lists the images under dir (recursively). Expected names come from
// csvPath (header "Image,Results", image stems without extension) when given,
// otherwise from the parent folder for files in sub-folders (dir/<name>/x.png).
func LoadImages(dir, csvPath string) ([]Image, error) {
	var want map[string]string
	if csvPath != "" {
		var err error
		if want, err = readCSV(csvPath); err != nil {
			return nil, err
		}
	}
	var out []Image
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp":
		default:
			return nil
		}
		img := Image{Path: p}
		stem := strings.TrimSuffix(d.Name(), filepath.Ext(d.Name()))
		if want != nil {
			img.Expected = want[stem]
		} else if parent := filepath.Dir(p); filepath.Clean(parent) != filepath.Clean(dir) {
			img.Expected = filepath.Base(parent)
		}
		out = append(out, img)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loadgen: list images in %s: %w", dir, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("loadgen: no images (jpg, png, gif, webp, bmp) under %s", dir)
	}
	return out, nil
}

func readCSV(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("loadgen: read %s: %w", path, err)
	}
	if len(rows) == 0 || len(rows[0]) < 2 || !strings.EqualFold(strings.TrimSpace(rows[0][0]), "Image") {
		return nil, fmt.Errorf("loadgen: %s: want a header \"Image,Results\"", path)
	}
	m := make(map[string]string, len(rows)-1)
	for _, r := range rows[1:] {
		if len(r) >= 2 {
			stem := strings.TrimSpace(r[0])
			stem = strings.TrimSuffix(stem, filepath.Ext(stem))
			m[stem] = strings.TrimSpace(r[1])
		}
	}
	return m, nil
}

type job struct {
	img  Image
	name string // file name sent
}

// Run uploads and checks; it returns an error only when it cannot run at all.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if o.URL == "" || len(o.Images) == 0 {
		return nil, errors.New("loadgen: a URL and at least one image are required")
	}
	if o.N <= 0 {
		o.N = len(o.Images)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 10
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency, MaxConnsPerHost: o.Concurrency}}
		// The run owns this client: leave no keep-alive connection behind it.
		defer o.Client.CloseIdleConnections()
	}
	data := map[string][]byte{}
	for _, img := range o.Images {
		if _, ok := data[img.Path]; ok {
			continue
		}
		b, err := os.ReadFile(img.Path)
		if err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		data[img.Path] = b
	}
	jobs := make(chan job)
	go func() {
		defer close(jobs)
		for i := range o.N {
			img := o.Images[i%len(o.Images)]
			name := filepath.Base(img.Path)
			if round := i / len(o.Images); round > 0 {
				ext := filepath.Ext(name)
				name = fmt.Sprintf("%s__%d%s", strings.TrimSuffix(name, ext), round, ext)
			}
			select {
			case jobs <- job{img: img, name: name}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var (
		mu   sync.Mutex
		s    = &Summary{}
		lats []float64
		wg   sync.WaitGroup
	)
	start := time.Now()
	for range o.Concurrency {
		wg.Go(func() {
			for j := range jobs {
				t0 := time.Now()
				status, body, err := upload(ctx, o, j.name, data[j.img.Path])
				lat := float64(time.Since(t0).Microseconds()) / 1000
				stem := strings.TrimSuffix(j.name, filepath.Ext(j.name))
				mu.Lock()
				s.Total++
				lats = append(lats, lat)
				var f *Failure
				switch {
				case err != nil:
					s.Failed++
					f = &Failure{File: j.name, Want: j.img.Expected, Got: err.Error()}
				case status != http.StatusOK:
					s.Failed++
					f = &Failure{File: j.name, Status: status, Want: j.img.Expected, Got: strings.TrimSpace(body)}
				case j.img.Expected == "":
					s.Unchecked++
				case body == stem+":"+j.img.Expected:
					s.Correct++
				default:
					s.Wrong++
					f = &Failure{File: j.name, Status: status, Want: stem + ":" + j.img.Expected, Got: body}
				}
				if f != nil && len(s.Failures) < 20 {
					s.Failures = append(s.Failures, *f)
				}
				mu.Unlock()
				if o.OnDone != nil {
					o.OnDone()
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	s.ElapsedS = elapsed.Seconds()
	if s.ElapsedS > 0 {
		s.PerSecond = float64(s.Total) / s.ElapsedS
	}
	slices.Sort(lats)
	s.P50MS, s.P95MS, s.P99MS = Percentile(lats, 50), Percentile(lats, 95), Percentile(lats, 99)
	if len(lats) > 0 {
		s.MaxMS = lats[len(lats)-1]
	}
	if err := ctx.Err(); err != nil && s.Total < o.N {
		return s, fmt.Errorf("loadgen: interrupted after %d of %d uploads: %w", s.Total, o.N, err)
	}
	return s, nil
}

func upload(ctx context.Context, o Options, name string, data []byte) (int, string, error) {
	b, contentType, err := MultipartBody("inputFile", name, data)
	if err != nil {
		return 0, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL, b)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", contentType)
	res, err := o.Client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return res.StatusCode, "", err
	}
	return res.StatusCode, string(body), nil
}

// Percentile of sorted values (nearest rank, stats.Percentile); 0 for none.
func Percentile(sorted []float64, p float64) float64 { return stats.Percentile(sorted, p) }

// MultipartBody is an upload form with one file field, as a browser sends it:
// the body and its Content-Type. Every client in the project (loadgen, the
// benchmarks, the end-to-end tests) builds uploads with it.
func MultipartBody(field, filename string, data []byte) (*bytes.Buffer, string, error) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fw, err := mw.CreateFormFile(field, filename)
	if err != nil {
		return nil, "", err
	}
	if _, err := fw.Write(data); err != nil {
		return nil, "", err
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return &b, mw.FormDataContentType(), nil
}

// WriteText prints a human summary.
func (s *Summary) WriteText(w io.Writer) {
	fmt.Fprintf(w, "uploads %d: correct %d, wrong %d, failed %d", s.Total, s.Correct, s.Wrong, s.Failed)
	if s.Unchecked > 0 {
		fmt.Fprintf(w, ", unchecked %d", s.Unchecked)
	}
	fmt.Fprintf(w, "\ntotal %.2fs (%.1f/s), latency p50 %.0f ms, p95 %.0f ms, p99 %.0f ms, max %.0f ms\n",
		s.ElapsedS, s.PerSecond, s.P50MS, s.P95MS, s.P99MS, s.MaxMS)
	for _, f := range s.Failures {
		if f.Status != 0 {
			fmt.Fprintf(w, "  %s: HTTP %d: got %q, want %q\n", f.File, f.Status, f.Got, f.Want)
		} else {
			fmt.Fprintf(w, "  %s: got %q, want %q\n", f.File, f.Got, f.Want)
		}
	}
}
