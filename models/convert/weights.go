package convert

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
)

// ErrBadWeights reports a manifest or .bin file that does not match what the
// converter expects (truncated download, wrong face-api version, ...).
var ErrBadWeights = errors.New("bad TFJS weights")

// Tensor is one dequantised weight tensor, in TensorFlow's layout.
type Tensor struct {
	Name  string
	Shape []int
	F     []float32 // float32 tensors
	I     []int32   // int32 tensors
}

// Len is the number of values the shape holds.
func (t *Tensor) Len() int { return shapeLen(t.Shape) }

func shapeLen(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

type manifestGroup struct {
	Paths   []string         `json:"paths"`
	Weights []manifestWeight `json:"weights"`
}

type manifestWeight struct {
	Name         string `json:"name"`
	Shape        []int  `json:"shape"`
	Dtype        string `json:"dtype"`
	Quantization *struct {
		Dtype string  `json:"dtype"`
		Scale float64 `json:"scale"`
		Min   float64 `json:"min"`
	} `json:"quantization"`
}

// Weights is a named set of tensors loaded from one TFJS weights manifest.
type Weights struct {
	model   string
	tensors map[string]*Tensor
	used    map[string]bool
}

// LoadWeights reads <dir>/<model>-weights_manifest.json and the .bin files it
// names, and dequantises every tensor the way tfjs-core's io.decodeWeights does:
// uint8/uint16 values become q*scale+min (computed in float64, stored as float32);
// int32 tensors are rounded half up like JavaScript's Math.round.
func LoadWeights(dir, model string) (*Weights, error) {
	mpath := filepath.Join(dir, model+"-weights_manifest.json")
	raw, err := os.ReadFile(mpath)
	if err != nil {
		return nil, fmt.Errorf("read manifest (is -src face-api's model/ folder?): %w", err)
	}
	var groups []manifestGroup
	if err := json.Unmarshal(raw, &groups); err != nil {
		return nil, fmt.Errorf("%w: parse %s: %v", ErrBadWeights, mpath, err)
	}
	w := &Weights{model: model, tensors: map[string]*Tensor{}, used: map[string]bool{}}
	for gi, g := range groups {
		var buf []byte
		for _, p := range g.Paths {
			// Manifest paths are relative file names; refuse anything that climbs out.
			if filepath.Base(p) != p {
				return nil, fmt.Errorf("%w: %s: group %d names path %q outside the model folder", ErrBadWeights, mpath, gi, p)
			}
			b, err := os.ReadFile(filepath.Join(dir, p))
			if err != nil {
				return nil, fmt.Errorf("read weights of %s: %w", model, err)
			}
			buf = append(buf, b...)
		}
		off := 0
		for _, mw := range g.Weights {
			t, n, err := decodeWeight(mw, buf[off:])
			if err != nil {
				return nil, fmt.Errorf("%w: %s: tensor %s: %v", ErrBadWeights, mpath, mw.Name, err)
			}
			if _, dup := w.tensors[t.Name]; dup {
				return nil, fmt.Errorf("%w: %s: tensor %s appears twice", ErrBadWeights, mpath, mw.Name)
			}
			w.tensors[t.Name] = t
			off += n
		}
		if off != len(buf) {
			return nil, fmt.Errorf("%w: %s: group %d: manifest describes %d bytes, files hold %d", ErrBadWeights, mpath, gi, off, len(buf))
		}
	}
	return w, nil
}

func decodeWeight(mw manifestWeight, buf []byte) (*Tensor, int, error) {
	for _, d := range mw.Shape {
		if d < 0 || d > 1<<24 {
			return nil, 0, fmt.Errorf("bad dimension %d", d)
		}
	}
	t := &Tensor{Name: mw.Name, Shape: append([]int(nil), mw.Shape...)}
	n := t.Len()
	if mw.Dtype != "float32" && mw.Dtype != "int32" {
		return nil, 0, fmt.Errorf("unsupported dtype %q", mw.Dtype)
	}
	var vals []float64
	var size int
	if q := mw.Quantization; q != nil {
		switch q.Dtype {
		case "uint8":
			size = n
			if len(buf) < size {
				return nil, 0, fmt.Errorf("needs %d bytes, %d left", size, len(buf))
			}
			vals = make([]float64, n)
			for i := range vals {
				// The explicit float64 conversion stops the compiler fusing this into an
				// FMA, so results match JavaScript's and are the same on every CPU.
				vals[i] = float64(float64(buf[i])*q.Scale) + q.Min
			}
		case "uint16":
			size = 2 * n
			if len(buf) < size {
				return nil, 0, fmt.Errorf("needs %d bytes, %d left", size, len(buf))
			}
			vals = make([]float64, n)
			for i := range vals {
				vals[i] = float64(float64(binary.LittleEndian.Uint16(buf[2*i:]))*q.Scale) + q.Min
			}
		default:
			return nil, 0, fmt.Errorf("unsupported quantization dtype %q", q.Dtype)
		}
	} else {
		size = 4 * n
		if len(buf) < size {
			return nil, 0, fmt.Errorf("needs %d bytes, %d left", size, len(buf))
		}
		vals = make([]float64, n)
		for i := range vals {
			u := binary.LittleEndian.Uint32(buf[4*i:])
			if mw.Dtype == "int32" {
				vals[i] = float64(int32(u))
			} else {
				vals[i] = float64(math.Float32frombits(u))
			}
		}
	}
	if mw.Dtype == "int32" {
		t.I = make([]int32, n)
		for i, v := range vals {
			t.I[i] = int32(math.Floor(v + 0.5))
		}
	} else {
		t.F = make([]float32, n)
		for i, v := range vals {
			t.F[i] = float32(v)
		}
	}
	return t, size, nil
}

// get returns the float32 tensor called name with the given shape.
func (w *Weights) get(name string, shape ...int) (*Tensor, error) {
	t, ok := w.tensors[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s has no tensor %q", ErrBadWeights, w.model, name)
	}
	if t.F == nil {
		return nil, fmt.Errorf("%w: %s: tensor %q is not float32", ErrBadWeights, w.model, name)
	}
	if len(shape) != len(t.Shape) {
		return nil, fmt.Errorf("%w: %s: tensor %q has shape %v, want %v", ErrBadWeights, w.model, name, t.Shape, shape)
	}
	for i := range shape {
		if shape[i] >= 0 && shape[i] != t.Shape[i] {
			return nil, fmt.Errorf("%w: %s: tensor %q has shape %v, want %v", ErrBadWeights, w.model, name, t.Shape, shape)
		}
	}
	w.used[name] = true
	return t, nil
}

// checkAllUsed makes sure the graph consumed every tensor in the manifest except
// those listed as deliberately unused.
func (w *Weights) checkAllUsed(ignore func(*Tensor) bool) error {
	var left []string
	for name, t := range w.tensors {
		if !w.used[name] && (ignore == nil || !ignore(t)) {
			left = append(left, name)
		}
	}
	if len(left) > 0 {
		slices.Sort(left)
		return fmt.Errorf("%w: %s: %d tensors not used by the graph (e.g. %q): wrong face-api version?", ErrBadWeights, w.model, len(left), left[0])
	}
	return nil
}
