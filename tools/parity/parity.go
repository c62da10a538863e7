// Package parity runs face-api itself (Node 22, @vladmandic/face-api on the tfjs
// WASM backend, one thread) on decoded RGB pixels, so that the Go engine can be
// compared with it on identical input tensors and timed against it.
package parity

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

//go:embed faceapi.js
var script []byte

// Image is one input: packed RGB pixels and face-api's TinyFaceDetectorOptions.
type Image struct {
	Name           string
	W, H           int
	Pix            []uint8 // W*H*3
	InputSize      int
	ScoreThreshold float64
}

// Face is what face-api returned for one face.
type Face struct {
	Box struct {
		X      float64 `json:"x"`
		Y      float64 `json:"y"`
		Width  float64 `json:"width"`
		Height float64 `json:"height"`
	} `json:"box"`
	Score      float64      `json:"score"`
	Landmarks  [][2]float64 `json:"landmarks"`
	Descriptor []float32    `json:"descriptor"`
}

// Result is face-api's answer for one image; MS is its median wall time per full
// detectAllFaces().withFaceLandmarks().withFaceDescriptors() run.
type Result struct {
	Name  string  `json:"name"`
	MS    float64 `json:"ms"`
	Faces []Face  `json:"faces"`
}

// Output is the whole run.
type Output struct {
	Backend string          `json:"backend"`
	SIMD    bool            `json:"simd"`
	Threads json.RawMessage `json:"threads"`
	Images  []Result        `json:"images"`
}

// Run writes the pixels to a temporary folder and runs face-api on them with the
// Node binary node and the npm tree modules (tools/node/node_modules). repeat is
// the number of timed runs per image (after one warm-up run).
func Run(ctx context.Context, node, modules string, images []Image, repeat int) (*Output, error) {
	dir, err := os.MkdirTemp("", "facefleet-parity-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	js := filepath.Join(dir, "faceapi.js")
	if err := os.WriteFile(js, script, 0o644); err != nil {
		return nil, err
	}
	type entry struct {
		Name           string  `json:"name"`
		Raw            string  `json:"raw"`
		Width          int     `json:"width"`
		Height         int     `json:"height"`
		InputSize      int     `json:"inputSize"`
		ScoreThreshold float64 `json:"scoreThreshold"`
	}
	abs, err := filepath.Abs(modules)
	if err != nil {
		return nil, err
	}
	man := struct {
		Modules string  `json:"modules"`
		Repeat  int     `json:"repeat"`
		Images  []entry `json:"images"`
	}{Modules: abs, Repeat: repeat}
	for i, im := range images {
		if len(im.Pix) != im.W*im.H*3 {
			return nil, fmt.Errorf("parity: %s: %d bytes for %dx%d", im.Name, len(im.Pix), im.W, im.H)
		}
		raw := filepath.Join(dir, strconv.Itoa(i)+".rgb")
		if err := os.WriteFile(raw, im.Pix, 0o644); err != nil {
			return nil, err
		}
		man.Images = append(man.Images, entry{im.Name, raw, im.W, im.H, im.InputSize, im.ScoreThreshold})
	}
	mf := filepath.Join(dir, "manifest.json")
	mb, _ := json.Marshal(man)
	if err := os.WriteFile(mf, mb, 0o644); err != nil {
		return nil, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, node, js, mf)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("parity: face-api on node %s failed: %w\n%s", node, err, stderr.String())
	}
	var out Output
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("parity: reading face-api's output: %w", err)
	}
	if len(out.Images) != len(images) {
		return nil, fmt.Errorf("parity: face-api answered for %d of %d images", len(out.Images), len(images))
	}
	return &out, nil
}
