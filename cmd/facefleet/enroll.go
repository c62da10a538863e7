package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/facefleet/facefleet/engine"
	"github.com/facefleet/facefleet/gallery"
	"github.com/facefleet/facefleet/internal/settings"
)

// engineFlags are the flags enroll and recognize share: -gallery FILE and the
// engine's declared settings.
type engineFlags struct {
	cmd     settings.Command
	gallery *string
	resolve func() (*settings.Values, error)
	v       *settings.Values
}

func addEngineFlags(cmd settings.Command, fs *flag.FlagSet) *engineFlags {
	return &engineFlags{
		cmd:     cmd,
		gallery: fs.String("gallery", "", "gallery file (versioned JSON; see gallery/)"),
		resolve: bindSettings(cmd, fs),
	}
}

func (f *engineFlags) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if f.v, err = f.resolve(); err != nil {
		return err
	}
	if *f.gallery == "" {
		return errors.New("-gallery FILE is required")
	}
	return nil
}

func (f *engineFlags) threshold() float64 { return f.v.Float(settings.Threshold) }

func (f *engineFlags) engine(stderr io.Writer) (*engine.Engine, error) {
	return newEngine(f.v, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
}

// imageExts are the files enroll reads from a person's folder.
var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".gif": true, ".webp": true}

func runEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("enroll", "usage: facefleet enroll -gallery FILE [flags] DIR\n\nDIR holds one folder per person, named after them, of photos of that person.\nThe largest face of each photo is enrolled.", stderr)
	ef := addEngineFlags(settings.Enroll, fs)
	appendTo := fs.Bool("append", false, "add to the existing gallery FILE instead of replacing it")
	if err := ef.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("want exactly one DIR")
	}
	dir := fs.Arg(0)
	people, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	g := gallery.New()
	if *appendTo { // a missing FILE starts empty
		switch old, err := gallery.Load(*ef.gallery); {
		case err == nil:
			g = old
		case !errors.Is(err, os.ErrNotExist):
			return err
		}
	}
	eng, err := ef.engine(stderr)
	if err != nil {
		return err
	}
	defer eng.Close()

	photos, skipped := 0, 0
	for _, p := range people {
		if !p.IsDir() || strings.HasPrefix(p.Name(), ".") {
			continue
		}
		files, err := os.ReadDir(filepath.Join(dir, p.Name()))
		if err != nil {
			return err
		}
		var names []string
		for _, f := range files {
			if !f.IsDir() && imageExts[strings.ToLower(filepath.Ext(f.Name()))] {
				names = append(names, f.Name())
			}
		}
		sort.Strings(names)
		var descs [][]float32
		for _, name := range names {
			if err := ctx.Err(); err != nil {
				return err
			}
			path := filepath.Join(dir, p.Name(), name)
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			res, err := eng.Analyze(ctx, data)
			if err != nil {
				if engine.IsImageError(err) {
					fmt.Fprintf(stderr, "warning: %s: %v (skipped)\n", path, err)
					skipped++
					continue
				}
				return fmt.Errorf("%s: %w", path, err)
			}
			_, face := gallery.Answer(res, nil, 0)
			if face == nil {
				fmt.Fprintf(stderr, "warning: %s: no face found (skipped)\n", path)
				skipped++
				continue
			}
			if face.Score == 0 {
				fmt.Fprintf(stderr, "warning: %s: no face detected; enrolled the whole image as a face crop\n", path)
			}
			if len(res.Faces) > 1 {
				fmt.Fprintf(stderr, "warning: %s: %d faces; enrolled the largest\n", path, len(res.Faces))
			}
			descs = append(descs, face.Descriptor)
		}
		if len(descs) == 0 {
			fmt.Fprintf(stderr, "warning: %s: no usable photo; not enrolled\n", p.Name())
			continue
		}
		if err := g.Add(p.Name(), descs...); err != nil {
			return err
		}
		photos += len(descs)
		fmt.Fprintf(stdout, "enrolled %s: %d photo(s)\n", p.Name(), len(descs))
	}
	if g.Len() == 0 {
		return fmt.Errorf("nothing enrolled from %s: it must hold one folder of photos per person", dir)
	}
	if err := g.Save(*ef.gallery); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "gallery %s: %d people, %d new photo(s), %d skipped\n", *ef.gallery, g.Len(), photos, skipped)
	return nil
}
