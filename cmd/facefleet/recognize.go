package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/facefleet/facefleet/apptier"
	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/protocol"
	"github.com/facefleet/facefleet/internal/settings"
	"github.com/facefleet/facefleet/webtier"
)

// apiError is the API's error JSON: {"error":{"code","message"}}.
type apiError struct {
	Error protocol.Error `json:"error"`
}

func runRecognize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("recognize", "usage: facefleet recognize -gallery FILE [-json] [flags] IMAGE...\n\nPrints <file stem>:<name> per image: the best match of its largest face,\nUnknown when nobody enrolled is close enough, NoFace when there is no face.", stderr)
	ef := addEngineFlags(settings.Recognize, fs)
	asJSON := fs.Bool("json", false, "print one JSON object per image, in order: exactly what POST /v1/recognize answers (or its error JSON)")
	if err := ef.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("no IMAGE given")
	}
	// The worker's own labelling: every face is named, and the answer is the
	// largest face's, exactly as the service answers.
	g, err := gallery.Load(*ef.gallery)
	if err != nil {
		return fmt.Errorf("-gallery: %w", err)
	}
	eng, err := ef.engine(stderr)
	if err != nil {
		return err
	}
	defer eng.Close()

	enc := json.NewEncoder(stdout)
	failed := 0
	for _, path := range fs.Args() {
		if err := ctx.Err(); err != nil {
			return err
		}
		stem := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		start := time.Now()
		data, err := os.ReadFile(path)
		code := protocol.CodeInputMissing
		var res *engine.Result
		var inference time.Duration
		if err == nil {
			code = protocol.CodeBadImage
			t0 := time.Now()
			res, err = eng.Analyze(ctx, data)
			inference = time.Since(t0) // as the worker measures it
		}
		if err != nil {
			failed++
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
			if *asJSON {
				if !engine.IsImageError(err) && code == protocol.CodeBadImage {
					code = "internal"
				}
				if err := enc.Encode(apiError{protocol.Error{Code: code, Message: err.Error()}}); err != nil {
					return err
				}
			}
			continue
		}
		name := apptier.Label(g, res, ef.threshold())
		if !*asJSON {
			fmt.Fprintf(stdout, "%s:%s\n", stem, name)
			continue
		}
		out := webtier.RecognizeResult{Key: path, Name: name, Width: res.Width, Height: res.Height, Faces: apptier.Faces(res)}
		out.Timings.InferenceMS = ms(inference)
		out.Timings.TotalMS = ms(time.Since(start))
		out.Timings.OverheadMS = out.Timings.TotalMS - out.Timings.InferenceMS
		if err := enc.Encode(out); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d image(s) failed", failed, fs.NArg())
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
