package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/settings"
)

// recognition is one line of `recognize -json`.
type recognition struct {
	File    string         `json:"file"`
	Name    string         `json:"name"`
	Face    *engine.Face   `json:"face,omitempty"`
	Result  *engine.Result `json:"result,omitempty"`
	Error   string         `json:"error,omitempty"`
	Timings engine.Timings `json:"timings"`
}

func runRecognize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("recognize", "usage: facefleet recognize -gallery FILE [-json] [flags] IMAGE...\n\nPrints <file stem>:<name> per image: the best match of its largest face,\nUnknown when nobody enrolled is close enough, NoFace when there is no face.", stderr)
	ef := addEngineFlags(settings.Recognize, fs)
	asJSON := fs.Bool("json", false, "print one JSON object per image (faces, boxes, distances, timings)")
	if err := ef.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("no IMAGE given")
	}
	g, err := gallery.Load(*ef.gallery)
	if err != nil {
		return err
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
		rec := recognition{File: path}
		data, err := os.ReadFile(path)
		var res *engine.Result
		if err == nil {
			res, err = eng.Analyze(ctx, data)
		}
		if err != nil {
			failed++
			fmt.Fprintf(stderr, "%s: %v\n", path, err)
			if *asJSON {
				rec.Error = err.Error()
				if err := enc.Encode(rec); err != nil {
					return err
				}
			}
			continue
		}
		name, face := gallery.Answer(res, g, ef.threshold())
		if !*asJSON {
			fmt.Fprintf(stdout, "%s:%s\n", stem, name)
			continue
		}
		rec.Name, rec.Face, rec.Result, rec.Timings = name, face, res, res.Timings
		if err := enc.Encode(rec); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d image(s) failed", failed, fs.NArg())
	}
	return nil
}
