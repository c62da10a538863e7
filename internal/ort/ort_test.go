package ort_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/facefleet/facefleet/internal/ort"
	"github.com/facefleet/facefleet/internal/testenv"
	"github.com/facefleet/facefleet/models/onnxpb"
	"google.golang.org/protobuf/proto"
)

// writeModel writes a two-output model: double = input*2, sum = ReduceSum over
// the last axis; input [N, K] float32 with both dimensions dynamic.
func writeModel(t *testing.T) string {
	t.Helper()
	vi := func(name string, dims ...string) *onnxpb.ValueInfoProto {
		sh := &onnxpb.TensorShapeProto{}
		for _, d := range dims {
			sh.Dim = append(sh.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}})
		}
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: sh}}}}
	}
	m := &onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph: &onnxpb.GraphProto{
			Name: proto.String("test"),
			Initializer: []*onnxpb.TensorProto{
				{Name: proto.String("two"), DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: []float32{2}},
				{Name: proto.String("axes"), Dims: []int64{1}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: []int64{-1}},
			},
			Node: []*onnxpb.NodeProto{
				{OpType: proto.String("Mul"), Input: []string{"input", "two"}, Output: []string{"double"}},
				{OpType: proto.String("ReduceSum"), Input: []string{"input", "axes"}, Output: []string{"sum"},
					Attribute: []*onnxpb.AttributeProto{{Name: proto.String("keepdims"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(0)}}},
			},
			Input:  []*onnxpb.ValueInfoProto{vi("input", "N", "K")},
			Output: []*onnxpb.ValueInfoProto{vi("double", "N", "K"), vi("sum", "N")},
		},
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "test.onnx")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInitBadPath(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	if err := os.WriteFile(garbage, []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", filepath.Join(t.TempDir(), "missing.so"), t.TempDir(), garbage} {
		_, err := ort.Init(p)
		if !errors.Is(err, ort.ErrLibrary) {
			t.Fatalf("Init(%q) = %v, want ErrLibrary", p, err)
		}
		if !strings.Contains(err.Error(), "make deps") || !strings.Contains(err.Error(), "FACEFLEET_ORT_LIB") {
			t.Errorf("Init(%q) error does not say how to fix it: %v", p, err)
		}
	}
}

func TestSession(t *testing.T) {
	lib := testenv.ORTLib(t)
	rt, err := ort.Init(lib)
	if err != nil {
		t.Fatal(err)
	}
	// A second Init with the same path shares the environment; another path fails.
	if _, err := ort.Init(lib); err != nil {
		t.Fatalf("second Init: %v", err)
	}
	other := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	os.WriteFile(other, []byte("x"), 0o644)
	if _, err := ort.Init(other); !errors.Is(err, ort.ErrLibrary) {
		t.Fatalf("Init with another path after success = %v, want ErrLibrary", err)
	}
	if v := rt.Version(); !strings.HasPrefix(v, "1.") {
		t.Errorf("Version() = %q", v)
	}

	s, err := rt.NewSession(writeModel(t), ort.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.InputShape(); len(got) != 2 || got[0] != -1 || got[1] != -1 {
		t.Errorf("InputShape = %v, want [-1 -1]", got)
	}
	ctx := context.Background()
	// Different shapes on the same session, from several goroutines at once.
	var wg sync.WaitGroup
	for g := 1; g <= 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, k := int64(g), int64(g+2)
			in := make([]float32, n*k)
			for i := range in {
				in[i] = float32(i)
			}
			out, err := s.Run(ctx, in, []int64{n, k})
			if err != nil {
				t.Error(err)
				return
			}
			d, sum := out["double"], out["sum"]
			if len(d.Shape) != 2 || d.Shape[0] != n || d.Shape[1] != k || len(sum.Data) != int(n) {
				t.Errorf("shapes: double %v sum %v", d.Shape, sum.Shape)
				return
			}
			for i, v := range d.Data {
				if v != 2*in[i] {
					t.Errorf("double[%d] = %v, want %v", i, v, 2*in[i])
					return
				}
			}
			for r := int64(0); r < n; r++ {
				var want float32
				for c := int64(0); c < k; c++ {
					want += in[r*k+c]
				}
				if sum.Data[r] != want {
					t.Errorf("sum[%d] = %v, want %v", r, sum.Data[r], want)
				}
			}
		}()
	}
	wg.Wait()

	if _, err := s.Run(ctx, make([]float32, 5), []int64{2, 3}); !errors.Is(err, ort.ErrShape) {
		t.Errorf("wrong length: %v, want ErrShape", err)
	}
	if _, err := s.Run(ctx, make([]float32, 6), []int64{6}); !errors.Is(err, ort.ErrShape) {
		t.Errorf("wrong rank: %v, want ErrShape", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Run(cctx, make([]float32, 6), []int64{2, 3}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v, want context.Canceled", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Run(ctx, make([]float32, 6), []int64{2, 3}); !errors.Is(err, ort.ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
	if _, err := rt.NewSession(filepath.Join(t.TempDir(), "none.onnx"), ort.SessionOptions{}); err == nil {
		t.Error("NewSession on a missing file succeeded")
	}
	// A thread pool, spinning or not, gives the same answers.
	for _, spin := range []bool{false, true} {
		s, err := rt.NewSession(writeModel(t), ort.SessionOptions{IntraOpThreads: 2, Spin: spin})
		if err != nil {
			t.Fatalf("Spin %v: %v", spin, err)
		}
		out, err := s.Run(ctx, []float32{1, 2, 3, 4, 5, 6}, []int64{2, 3})
		if err != nil || len(out["sum"].Data) != 2 || out["sum"].Data[0] != 6 || out["sum"].Data[1] != 15 {
			t.Errorf("Spin %v: sum = %v, %v; want [6 15]", spin, out["sum"].Data, err)
		}
		s.Close()
	}
}
