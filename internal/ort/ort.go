// Package ort is facefleet's small wrapper over github.com/yalue/onnxruntime_go:
// it loads the ONNX Runtime shared library once per process and runs models
// with one float32 input and named float32 outputs of dynamic shape.
//
// ONNX Runtime's environment (and onnxruntime_go's handle to the library) is
// process-global, so Init guards it with one process-wide value: the first
// successful Init loads the library; later calls with the same path return a
// Runtime sharing it, a different path is an error. Many sessions (one per
// worker) can share that environment. The environment is never torn down: it
// lives as long as the process, which is what long-running workers want.
package ort

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	onnx "github.com/yalue/onnxruntime_go"
)

// MinVersion is the oldest onnxruntime-node release whose library works
// (onnxruntime_go v1.27 needs ORT API version 24).
const MinVersion = "1.24"

// ErrLibrary means the ONNX Runtime shared library is missing, unloadable or
// too old.
var ErrLibrary = errors.New("cannot load ONNX Runtime")

// fixHint says how to get a library that works.
const fixHint = "run `make deps` or set FACEFLEET_ORT_LIB to an absolute path of libonnxruntime.so.1 from onnxruntime-node >= " + MinVersion

// environment is the process-wide ONNX Runtime state. It is a mutex-guarded
// value rather than a sync.Once so that a failed attempt (a wrong path) does
// not stop a later Init with a good path from succeeding.
type environment struct {
	mu   sync.Mutex
	path string // the library loaded, "" until the first success
}

// The library can be loaded only once per process, so this one piece of
// package state mirrors onnxruntime_go's own globals.
var env environment

// Runtime is a handle on the process's ONNX Runtime environment.
type Runtime struct {
	libPath string
}

// Init loads the ONNX Runtime library at libPath (made absolute) and creates
// the process-wide environment. Calling it again with the same path returns a
// Runtime sharing that environment; a different path fails.
func Init(libPath string) (*Runtime, error) {
	if libPath == "" {
		return nil, fmt.Errorf("%w: no library path given: %s", ErrLibrary, fixHint)
	}
	abs, err := filepath.Abs(libPath)
	if err != nil {
		return nil, fmt.Errorf("%w: path %q: %v: %s", ErrLibrary, libPath, err, fixHint)
	}
	env.mu.Lock()
	defer env.mu.Unlock()
	if env.path != "" {
		if env.path != abs {
			return nil, fmt.Errorf("%w: the process already loaded %s and cannot load a second library %s", ErrLibrary, env.path, abs)
		}
		return &Runtime{libPath: abs}, nil
	}
	if st, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("%w: %s: %v: %s", ErrLibrary, abs, err, fixHint)
	} else if st.IsDir() {
		return nil, fmt.Errorf("%w: %s is a directory: %s", ErrLibrary, abs, fixHint)
	}
	onnx.SetSharedLibraryPath(abs)
	if err := onnx.InitializeEnvironment(onnx.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("%w: %s (%v): %s", ErrLibrary, abs, err, fixHint)
	}
	env.path = abs
	return &Runtime{libPath: abs}, nil
}

// LibPath is the absolute path of the loaded library.
func (r *Runtime) LibPath() string { return r.libPath }

// Version is ONNX Runtime's version string, e.g. "1.24.3".
func (r *Runtime) Version() string { return onnx.GetVersion() }

// SessionOptions configures NewSession.
type SessionOptions struct {
	// IntraOpThreads is the number of threads one Run may use; 0 lets ONNX
	// Runtime choose (all cores). Workers that run in parallel should use 1.
	IntraOpThreads int
	// Spin lets the intra-op pool's threads busy-wait for work between ops
	// (ONNX Runtime's default). Off here: with 2 threads on a loaded 2-core
	// machine spinning doubled the recognition net's median time and CPU
	// time (12 ms vs 6 ms per run). With IntraOpThreads 1 there is no pool
	// and it changes nothing.
	Spin bool
}

// ErrShape means an input does not fit the model.
var ErrShape = errors.New("input does not fit the model")

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("ort session is closed")

// Session runs one model: one float32 input, every float32 output.
//
// A Session is safe for concurrent use: ONNX Runtime's Run is thread-safe and
// each call gets its own input and output tensors. Close waits for running
// calls and makes later calls return ErrClosed.
type Session struct {
	path    string
	input   onnx.InputOutputInfo
	outputs []string
	mu      sync.RWMutex // Run holds R, Close holds W
	s       *onnx.DynamicAdvancedSession
}

// NewSession opens modelPath (an .onnx file). The model must have exactly one
// float32 tensor input; every output must be a float32 tensor.
func (r *Runtime) NewSession(modelPath string, opts SessionOptions) (*Session, error) {
	if opts.IntraOpThreads < 0 {
		return nil, fmt.Errorf("ort: IntraOpThreads %d must be >= 0", opts.IntraOpThreads)
	}
	if _, err := os.Stat(modelPath); err != nil {
		return nil, fmt.Errorf("ort: model %s: %w (run `make models`)", modelPath, err)
	}
	ins, outs, err := onnx.GetInputOutputInfo(modelPath)
	if err != nil {
		return nil, fmt.Errorf("ort: read inputs/outputs of %s: %w", modelPath, err)
	}
	if len(ins) != 1 || ins[0].OrtValueType != onnx.ONNXTypeTensor || ins[0].DataType != onnx.TensorElementDataTypeFloat {
		return nil, fmt.Errorf("ort: model %s must have exactly one float32 tensor input, has %v", modelPath, ins)
	}
	var names []string
	for _, o := range outs {
		if o.OrtValueType != onnx.ONNXTypeTensor || o.DataType != onnx.TensorElementDataTypeFloat {
			return nil, fmt.Errorf("ort: model %s: output %q is not a float32 tensor", modelPath, o.Name)
		}
		names = append(names, o.Name)
	}
	so, err := onnx.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("ort: session options: %w", err)
	}
	defer so.Destroy()
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("ort: set intra-op threads: %w", err)
		}
	}
	// The graphs are chains; a second inter-op pool would only add threads.
	if err := so.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("ort: set inter-op threads: %w", err)
	}
	if err := so.SetExecutionMode(onnx.ExecutionModeSequential); err != nil {
		return nil, fmt.Errorf("ort: set execution mode: %w", err)
	}
	// ORT's default, stated because it matters: level "all" adds the blocked
	// NCHWc conv layout and conv+activation/add fusions, which run the
	// recognition net in half the time of "basic" or "extended".
	if err := so.SetGraphOptimizationLevel(onnx.GraphOptimizationLevelEnableAll); err != nil {
		return nil, fmt.Errorf("ort: set graph optimization level: %w", err)
	}
	if !opts.Spin {
		if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			return nil, fmt.Errorf("ort: turn off spinning: %w", err)
		}
	}
	s, err := onnx.NewDynamicAdvancedSession(modelPath, []string{ins[0].Name}, names, so)
	if err != nil {
		return nil, fmt.Errorf("ort: load model %s: %w", modelPath, err)
	}
	return &Session{path: modelPath, input: ins[0], outputs: names, s: s}, nil
}

// InputName is the model's input name.
func (s *Session) InputName() string { return s.input.Name }

// InputShape is the model's declared input shape; -1 marks a dynamic dimension.
func (s *Session) InputShape() []int64 { return slices.Clone(s.input.Dimensions) }

// OutputNames lists the outputs Run returns.
func (s *Session) OutputNames() []string { return slices.Clone(s.outputs) }

// Output is one output tensor, copied out of ONNX Runtime's memory.
type Output struct {
	Shape []int64
	Data  []float32
}

// Run feeds input (row-major, of the given shape) to the model and returns
// every output by name. input must not change until Run returns. Cancelling
// ctx asks ONNX Runtime to stop the run early.
func (s *Session) Run(ctx context.Context, input []float32, shape []int64) (map[string]Output, error) {
	if err := s.checkShape(input, shape); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.s == nil {
		return nil, ErrClosed
	}
	in, err := onnx.NewTensor(onnx.NewShape(shape...), input)
	if err != nil {
		return nil, fmt.Errorf("ort: input tensor: %w", err)
	}
	defer in.Destroy()
	outs := make([]onnx.Value, len(s.outputs))
	defer func() {
		for _, o := range outs {
			if o != nil {
				o.Destroy()
			}
		}
	}()
	var ro *onnx.RunOptions
	if ctx.Done() != nil {
		if ro, err = onnx.NewRunOptions(); err != nil {
			return nil, fmt.Errorf("ort: run options: %w", err)
		}
		defer ro.Destroy()
		done := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(done)
			ro.Terminate()
		})
		defer func() {
			if !stop() {
				<-done // Terminate is running; let it finish before Destroy
			}
		}()
	}
	if err := s.s.RunWithOptions([]onnx.Value{in}, outs, ro); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("ort: run %s: %w", filepath.Base(s.path), cerr)
		}
		return nil, fmt.Errorf("ort: run %s: %w", filepath.Base(s.path), err)
	}
	res := make(map[string]Output, len(outs))
	for i, o := range outs {
		t, ok := o.(*onnx.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("ort: output %q is %T, not a float32 tensor", s.outputs[i], o)
		}
		res[s.outputs[i]] = Output{Shape: slices.Clone(t.GetShape()), Data: slices.Clone(t.GetData())}
	}
	return res, nil
}

func (s *Session) checkShape(input []float32, shape []int64) error {
	want := s.input.Dimensions
	if len(shape) != len(want) {
		return fmt.Errorf("ort: %w: %s wants a rank-%d input %v, got shape %v", ErrShape, filepath.Base(s.path), len(want), want, shape)
	}
	n := int64(1)
	for i, d := range shape {
		if d <= 0 || (want[i] > 0 && d != want[i]) {
			return fmt.Errorf("ort: %w: %s wants input shape %v (-1 = any), got %v", ErrShape, filepath.Base(s.path), want, shape)
		}
		n *= d
	}
	if int64(len(input)) != n {
		return fmt.Errorf("ort: %w: shape %v holds %d values, input has %d", ErrShape, shape, n, len(input))
	}
	return nil
}

// Close releases the session; it waits for running calls to finish.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	if err != nil {
		return fmt.Errorf("ort: close %s: %w", filepath.Base(s.path), err)
	}
	return nil
}
