package convert

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/facefleet/facefleet/models/onnxpb"
	"google.golang.org/protobuf/proto"
)

// Opset is the ONNX operator set the graphs use (ONNX Runtime 1.24 supports it fully).
const Opset = 17

// irVersion 8 matches onnx.proto 1.12 (the generated onnxpb) and opset 17.
const irVersion = 8

// builder assembles one ONNX graph. Errors are sticky: the first one is kept and
// later calls become no-ops, so net descriptions read as straight-line code.
type builder struct {
	w     *Weights
	g     *onnxpb.GraphProto
	names map[string]int
	err   error
}

func newBuilder(w *Weights, name string) *builder {
	return &builder{w: w, g: &onnxpb.GraphProto{Name: proto.String(name)}, names: map[string]int{}}
}

func (b *builder) fail(err error) {
	if b.err == nil {
		b.err = err
	}
}

// weight fetches a float32 tensor and checks its shape (-1 matches any size).
func (b *builder) weight(name string, shape ...int) []float32 {
	if b.err != nil {
		return make([]float32, shapeLen(abs(shape)))
	}
	t, err := b.w.get(name, shape...)
	if err != nil {
		b.fail(err)
		return make([]float32, shapeLen(abs(shape)))
	}
	return t.F
}

func abs(s []int) []int {
	o := make([]int, len(s))
	for i, d := range s {
		o[i] = max(d, 1)
	}
	return o
}

// unique returns prefix, or prefix_N when prefix is already taken, so value and
// node names stay readable (layer names) and deterministic.
func (b *builder) unique(prefix string) string {
	n := b.names[prefix]
	b.names[prefix] = n + 1
	if n == 0 {
		return prefix
	}
	return fmt.Sprintf("%s_%d", prefix, n)
}

func (b *builder) initF32(name string, dims []int64, data []float32) string {
	name = b.unique(name)
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{
		Name: proto.String(name), Dims: dims,
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: raw,
	})
	return name
}

func (b *builder) initI64(name string, data ...int64) string {
	name = b.unique(name)
	raw := make([]byte, 8*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{
		Name: proto.String(name), Dims: []int64{int64(len(data))},
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), RawData: raw,
	})
	return name
}

// node appends one node with a single output named after it and returns that name.
func (b *builder) node(op, name string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	name = b.unique(name)
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{
		Name: proto.String(name), OpType: proto.String(op),
		Input: inputs, Output: []string{name}, Attribute: attrs,
	})
	return name
}

// output renames the value produced by the last node to name (a graph output).
func (b *builder) rename(value, name string) {
	for _, n := range b.g.Node {
		for i, o := range n.Output {
			if o == value {
				n.Output[i] = name
			}
		}
		for i, in := range n.Input {
			if in == value {
				n.Input[i] = name
			}
		}
	}
}

func attrInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func attrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func attrFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func attrString(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

// dim is a tensor dimension: a fixed size, or a symbolic name when param != "".
type dim struct {
	size  int64
	param string
}

func valueInfo(name string, dims ...dim) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		if d.param != "" {
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d.param}})
		} else {
			shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d.size}})
		}
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: shape,
		}}},
	}
}

// inputNorm is the normalisation face-api applies before a net's first layer:
// (x - mean[c]) / div on RGB values 0..255.
type inputNorm struct {
	mean [3]float32
	div  float32
}

// input adds the graph's input (NHWC float32 RGB 0..255) and views it, without
// moving any data, as one channel of H rows of W*3 interleaved values
// [N,1,H,W*3]. The first conv reads RGB pixels there with a kernel 3*kw values
// wide and a horizontal stride of 3 values per pixel (convSpec.interleaved):
// the same sums as on NCHW, with no Transpose. Normalisation is folded into
// that conv when it does not pad (convSpec.norm), otherwise done by normalize.
// (A Sub broadcasting a 3-vector over NHWC took a quarter of the detector's
// time in ONNX Runtime.)
func (b *builder) input(dims ...dim) string {
	b.g.Input = append(b.g.Input, valueInfo("input", dims...))
	x := b.node("Reshape", "interleave/rows", []string{"input", b.initI64("interleave/rows/shape", 0, 0, -1)})
	return b.node("Unsqueeze", "interleave", []string{x, b.initI64("interleave/axes", 1)})
}

// normalize adds (x - mean) / div on the interleaved view of an image width
// pixels wide, for nets whose first conv pads its input (padding must stay
// zero after normalisation, which a folded conv cannot express).
func (b *builder) normalize(x string, n inputNorm, width int) string {
	mean := make([]float32, 3*width)
	for i := range mean {
		mean[i] = n.mean[i%3]
	}
	x = b.node("Sub", "normalize/sub", []string{x, b.initF32("normalize/mean", []int64{int64(len(mean))}, mean)})
	return b.node("Div", "normalize/div", []string{x, b.initF32("normalize/divisor", nil, []float32{n.div})})
}

// foldNorm rewrites an OIHW conv that reads (x - mean) / div so that it reads x:
// conv(W, (x-m)/d) + B = conv(W/d, x) + (B - sum(W*m)/d). This holds only
// without padding (a padded zero would stand for x = m). Sums are in float64.
func foldNorm(w, bias []float32, dims [4]int64, n inputNorm) ([]float32, []float32) {
	out, in, k := int(dims[0]), int(dims[1]), int(dims[2]*dims[3])
	fw := make([]float32, len(w))
	fb := make([]float32, out)
	d := float64(n.div)
	for o := 0; o < out; o++ {
		acc := 0.0
		if bias != nil {
			acc = float64(bias[o])
		}
		for c := 0; c < in; c++ {
			for i := 0; i < k; i++ {
				j := (o*in+c)*k + i
				acc -= float64(w[j]) * float64(n.mean[c]) / d
				fw[j] = float32(float64(w[j]) / d)
			}
		}
		fb[o] = float32(acc)
	}
	return fw, fb
}

// convSpec describes one 2-D convolution in ONNX terms.
type convSpec struct {
	stride int64
	pads   [4]int64 // top, left, bottom, right
	group  int64
	auto   string // auto_pad, e.g. SAME_UPPER, instead of pads
	// norm, if set, is the input normalisation folded into this (first,
	// unpadded, ungrouped, 3-channel) conv's weights and bias.
	norm *inputNorm
	// interleaved: the conv reads RGB from input's [N,1,H,W*3] view; its
	// weights (given OIHW over 3 channels) are laid out to match.
	interleaved bool
}

// conv adds a Conv node with OIHW weights (dims) and an optional bias.
func (b *builder) conv(name, x string, w []float32, dims [4]int64, bias []float32, s convSpec) string {
	if s.norm != nil {
		if s.pads != [4]int64{} || s.auto != "" || s.group > 1 || dims[1] != 3 {
			b.fail(fmt.Errorf("%s: input normalisation can only be folded into an unpadded, ungrouped conv over RGB", name))
			return x
		}
		w, bias = foldNorm(w, bias, dims, *s.norm)
	}
	stride := max(s.stride, 1)
	sx := stride
	if s.interleaved {
		if s.auto != "" || s.group > 1 || dims[1] != 3 {
			b.fail(fmt.Errorf("%s: only an ungrouped conv over RGB with explicit pads can read the interleaved input", name))
			return x
		}
		w, dims = interleave(w, dims)
		sx = 3 * stride
		s.pads = [4]int64{s.pads[0], 3 * s.pads[1], s.pads[2], 3 * s.pads[3]}
	}
	inputs := []string{x, b.initF32(name+"/W", dims[:], w)}
	if bias != nil {
		inputs = append(inputs, b.initF32(name+"/B", []int64{dims[0]}, bias))
	}
	attrs := []*onnxpb.AttributeProto{
		attrInts("kernel_shape", dims[2], dims[3]),
		attrInts("strides", stride, sx),
	}
	if s.auto != "" {
		attrs = append(attrs, attrString("auto_pad", s.auto))
	} else {
		attrs = append(attrs, attrInts("pads", s.pads[0], s.pads[1], s.pads[2], s.pads[3]))
	}
	if s.group > 1 {
		attrs = append(attrs, attrInt("group", s.group))
	}
	return b.node("Conv", name, inputs, attrs...)
}

// interleave turns OIHW weights over 3 channels [O,3,kh,kw] into [O,1,kh,3*kw]
// for the interleaved input view: tap (c, i, j) moves to row i, column 3*j+c.
func interleave(w []float32, dims [4]int64) ([]float32, [4]int64) {
	o, kh, kw := int(dims[0]), int(dims[2]), int(dims[3])
	out := make([]float32, len(w))
	for k := 0; k < o; k++ {
		for c := 0; c < 3; c++ {
			for i := 0; i < kh; i++ {
				for j := 0; j < kw; j++ {
					out[(k*kh+i)*3*kw+3*j+c] = w[((k*3+c)*kh+i)*kw+j]
				}
			}
		}
	}
	return out, [4]int64{dims[0], 1, dims[2], 3 * dims[3]}
}

// samePads are TensorFlow's "same" paddings for one axis: the odd pixel goes at the end.
func samePads(in, k, s int64) (before, after int64) {
	out := (in + s - 1) / s
	total := max((out-1)*s+k-in, 0)
	return total / 2, total - total/2
}

// hwioToOIHW turns a TF conv filter [kh,kw,in,out] into ONNX's [out,in,kh,kw].
func hwioToOIHW(w []float32, kh, kw, in, out int) []float32 {
	o := make([]float32, len(w))
	for h := 0; h < kh; h++ {
		for x := 0; x < kw; x++ {
			for i := 0; i < in; i++ {
				for c := 0; c < out; c++ {
					o[((c*in+i)*kh+h)*kw+x] = w[((h*kw+x)*in+i)*out+c]
				}
			}
		}
	}
	return o
}

// depthwiseToONNX turns a TF depthwise filter [kh,kw,C,1] into ONNX's [C,1,kh,kw].
func depthwiseToONNX(w []float32, kh, kw, c int) []float32 {
	o := make([]float32, len(w))
	for h := 0; h < kh; h++ {
		for x := 0; x < kw; x++ {
			for i := 0; i < c; i++ {
				o[(i*kh+h)*kw+x] = w[(h*kw+x)*c+i]
			}
		}
	}
	return o
}

// model wraps the graph in a ModelProto and serialises it deterministically.
func (b *builder) model(doc string) ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	m := &onnxpb.ModelProto{
		IrVersion:    proto.Int64(irVersion),
		ProducerName: proto.String("facefleet models/convert"),
		DocString:    proto.String(doc),
		Graph:        b.g,
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(Opset)}},
	}
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal ONNX model: %w", err)
	}
	return out, nil
}
