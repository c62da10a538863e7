package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/facefleet/facefleet/loadgen"
)

// runLoadgen fires concurrent course-style uploads and checks the answers; it
// fails when any answer is wrong or any upload failed.
func runLoadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("loadgen", "", stderr)
	url := fs.String("url", "http://127.0.0.1:8000/", "web tier URL (uploads POST here, field inputFile)")
	dir := fs.String("dir", "", "folder of images (searched recursively; sub-folder names are the expected names when -csv is absent)")
	csvPath := fs.String("csv", "", "expected answers: CSV with header Image,Results (image stems without extension)")
	n := fs.Int("n", 0, "total uploads (0: one per image; more repeat the images under unique names)")
	c := fs.Int("c", 10, "concurrent uploads")
	timeout := fs.Duration("timeout", 2*time.Minute, "timeout per upload")
	quiet := fs.Bool("quiet", false, "no progress bar")
	asJSON := fs.Bool("json", false, "print the summary as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("-dir is required (a folder of images)")
	}
	imgs, err := loadgen.LoadImages(*dir, *csvPath)
	if err != nil {
		return err
	}
	total := *n
	if total <= 0 {
		total = len(imgs)
	}
	o := loadgen.Options{URL: *url, Images: imgs, N: total, Concurrency: *c, Timeout: *timeout}
	if f, ok := stderr.(*os.File); ok && !*quiet && term.IsTerminal(int(f.Fd())) {
		bar := progressbar.NewOptions(total, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("uploads"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionClearOnFinish())
		o.OnDone = func() { _ = bar.Add(1) }
		defer bar.Finish()
	}
	s, err := loadgen.Run(ctx, o)
	if s != nil {
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(s)
		} else {
			s.WriteText(stdout)
		}
	}
	if err != nil {
		return err
	}
	if !s.OK() {
		return fmt.Errorf("%d wrong and %d failed of %d uploads", s.Wrong, s.Failed, s.Total)
	}
	return nil
}
