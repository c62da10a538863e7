// Package parity runs face-api itself (Node 22, @vladmandic/face-api on the tfjs
// WASM backend, one thread) on decoded RGB pixels, so that the Go engine can be
// compared with it on identical input tensors and timed against it.
package parity

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
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

// Result is face-api's answer for one image. From Run, MS is the median wall
// time of the timed detectAllFaces().withFaceLandmarks().withFaceDescriptors()
// runs; from Peer.Analyze, MS and CPUMS are that one run's wall and process CPU
// time.
type Result struct {
	Name  string  `json:"name"`
	MS    float64 `json:"ms"`
	CPUMS float64 `json:"cpuMs"`
	Faces []Face  `json:"faces"`
}

// Output is the whole run.
type Output struct {
	Backend string          `json:"backend"`
	SIMD    bool            `json:"simd"`
	Threads json.RawMessage `json:"threads"`
	Images  []Result        `json:"images"`
}

// Peer is a running face-api process (Node) that holds the models loaded and
// runs its pipeline on one of the images it was started with per Analyze call,
// so a benchmark can interleave face-api and the engine under the same load.
// A Peer is not safe for concurrent use.
type Peer struct {
	Backend string          // tfjs backend, "wasm"
	SIMD    bool            // WASM SIMD in use
	Threads json.RawMessage // 1, or "multi" if the WASM backend runs threads

	images []Image
	dir    string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr *bytes.Buffer

	waitOnce sync.Once
	waitErr  error
}

// wait reaps the process once (read's error path and Close both need it).
func (p *Peer) wait() error {
	p.waitOnce.Do(func() { p.waitErr = p.cmd.Wait() })
	return p.waitErr
}

// Start writes the pixels to a temporary folder and starts face-api on them with
// the Node binary node and the npm tree modules (tools/node/node_modules). It
// returns once the models are loaded. Cancelling ctx kills the process.
func Start(ctx context.Context, node, modules string, images []Image) (_ *Peer, err error) {
	dir, err := os.MkdirTemp("", "facefleet-parity-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
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
		Images  []entry `json:"images"`
	}{Modules: abs}
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
	p := &Peer{images: images, dir: dir, stderr: &bytes.Buffer{}}
	p.cmd = exec.CommandContext(ctx, node, js, mf)
	p.cmd.Stderr = p.stderr
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.out = bufio.NewReaderSize(stdout, 1<<20)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("parity: start face-api on node %s: %w", node, err)
	}
	var hello struct {
		Backend string          `json:"backend"`
		SIMD    bool            `json:"simd"`
		Threads json.RawMessage `json:"threads"`
	}
	if err := p.read(&hello); err != nil {
		p.Close()
		return nil, err
	}
	p.Backend, p.SIMD, p.Threads = hello.Backend, hello.SIMD, hello.Threads
	return p, nil
}

// read decodes face-api's next answer line.
func (p *Peer) read(v any) error {
	line, err := p.out.ReadBytes('\n')
	if err != nil {
		p.stdin.Close()
		werr := p.wait()
		return fmt.Errorf("parity: face-api stopped (%v, exit: %v):\n%s", err, werr, p.stderr.String())
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("parity: reading face-api's answer: %w", err)
	}
	return nil
}

// Analyze runs face-api's pipeline once on image i; Faces is filled only when
// withFaces is set (serialising descriptors is not part of the timing, but
// skipping it keeps benchmark rounds short).
func (p *Peer) Analyze(i int, withFaces bool) (Result, error) {
	if i < 0 || i >= len(p.images) {
		return Result{}, fmt.Errorf("parity: image %d of %d", i, len(p.images))
	}
	req, _ := json.Marshal(struct {
		Image int  `json:"image"`
		Faces bool `json:"faces"`
	}{i, withFaces})
	if _, err := p.stdin.Write(append(req, '\n')); err != nil {
		return Result{}, fmt.Errorf("parity: send to face-api: %w (%s)", err, p.stderr.String())
	}
	var r Result
	if err := p.read(&r); err != nil {
		return Result{}, err
	}
	r.Name = p.images[i].Name
	return r, nil
}

// Close ends the process (EOF on its stdin) and removes the temporary files.
func (p *Peer) Close() error {
	p.stdin.Close()
	err := p.wait()
	os.RemoveAll(p.dir)
	if err != nil {
		return fmt.Errorf("parity: face-api exited: %w: %s", err, p.stderr.String())
	}
	return nil
}

// Run runs face-api on every image: one warm-up run (whose faces are returned)
// and repeat timed runs, whose median wall time is Result.MS (0 when repeat is 0).
func Run(ctx context.Context, node, modules string, images []Image, repeat int) (*Output, error) {
	p, err := Start(ctx, node, modules, images)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	out := &Output{Backend: p.Backend, SIMD: p.SIMD, Threads: p.Threads}
	for i := range images {
		r, err := p.Analyze(i, true)
		if err != nil {
			return nil, err
		}
		var ms []float64
		for range repeat {
			t, err := p.Analyze(i, false)
			if err != nil {
				return nil, err
			}
			ms = append(ms, t.MS)
		}
		r.MS, r.CPUMS = 0, 0
		if len(ms) > 0 {
			slices.Sort(ms)
			r.MS = ms[len(ms)/2]
		}
		out.Images = append(out.Images, r)
	}
	return out, nil
}
