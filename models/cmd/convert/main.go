// Command convert turns face-api's TFJS weights into ONNX models and checks them
// against models/SHA256SUMS:
//
//	go run ./models/cmd/convert -src tools/node/node_modules/@vladmandic/face-api/model -out build/models
//
// -update rewrites the sums file instead of checking (after an intended change).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/facefleet/facefleet/models"
	"github.com/facefleet/facefleet/models/convert"
)

func main() {
	if err := run(); err != nil {
		slog.Error("convert failed", "err", err)
		os.Exit(1)
	}
}

func run() error {
	src := flag.String("src", "tools/node/node_modules/@vladmandic/face-api/model", "face-api's model/ folder (TFJS manifests and .bin files)")
	out := flag.String("out", "build/models", "output folder for the .onnx files")
	only := flag.String("models", "", "comma-separated subset of: "+strings.Join(convert.Names(), ","))
	update := flag.Bool("update", false, "rewrite the sums file from this run instead of checking against it")
	sumsPath := flag.String("sums", "models/SHA256SUMS", "sums file that -update rewrites (checks use the copy built into this binary)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var sel []string
	if *only != "" {
		sel = strings.Split(*only, ",")
	}
	res, err := convert.Convert(ctx, convert.Options{
		Src: *src, Out: *out, Models: sel, Sums: models.SHA256SUMS(), Update: *update,
		Progress: func(r convert.Result) {
			fmt.Printf("%-26s %9d bytes  sha256 %s\n", r.File, r.Bytes, r.SHA256)
		},
	})
	if err != nil {
		return err
	}
	if *update {
		old, err := os.ReadFile(*sumsPath)
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("read %s: %w", *sumsPath, err)
		}
		text, err := convert.FormatSums(string(old), res)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*sumsPath, []byte(text), 0o644); err != nil {
			return fmt.Errorf("write %s (run from the repository root or pass -sums): %w", *sumsPath, err)
		}
		fmt.Printf("updated %s\n", *sumsPath)
	}
	return nil
}
