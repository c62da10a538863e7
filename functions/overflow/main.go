// Command bootstrap is the overflow Lambda (provided.al2023, x86_64): app-tier
// workers that answer from the request queue while the EC2 capacity the scaler
// asked for boots (internal/overflowfn). It runs the same engine (ONNX Runtime
// through cgo), worker loop, store and answer path as the EC2 app tier; the
// models and libonnxruntime travel in the zip next to it.
//
// Build as SAM does (template.yaml's BuildMethod makefile): make
// build-OverflowFunction ARTIFACTS_DIR=DIR (cgo, linux/amd64, glibc <= 2.34).
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/facefleet/facefleet/internal/overflowfn"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	h, _, err := overflowfn.Wire(context.Background(), os.Getenv, log)
	if err != nil {
		// Still start the runtime: every invoke then fails with this message
		// instead of the init crash-looping with no event context.
		log.Error("overflow: configuration error", "err", err)
		lambda.Start(func(context.Context) error { return err })
		return
	}
	lambda.Start(h.Invoke)
}
