package convert

import "fmt"

// Mean RGB values face-api subtracts before its recognition and landmark nets.
var faceMeanRGB = [3]float32{122.782, 117.001, 104.298}

// RecognitionSize is the fixed input size of the recognition net.
const RecognitionSize = 150

// recognitionNet builds FaceRecognitionNet (dlib's ResNet-29, 128-D output) as
// face-api's src/faceRecognitionNet does it, with every scale layer folded
// into its convolution. Input [N,150,150,3], output [N,128].
func recognitionNet(w *Weights) ([]byte, error) {
	b := newBuilder(w, "face_recognition")
	n := dim{param: "N"}
	x := b.input(n, dim{size: RecognitionSize}, dim{size: RecognitionSize}, dim{size: 3})
	size := int64(RecognitionSize)
	ch := int64(3)

	// conv32_down: 7x7 stride 2 valid, ReLU; then max pool 3x3 stride 2 valid.
	x, ch = b.scaledConv("conv32_down", x, ch, 7, convSpec{stride: 2, norm: &inputNorm{faceMeanRGB, 255}, interleaved: true}, true)
	size = (size-7)/2 + 1
	x = b.node("MaxPool", "pool", []string{x}, attrInts("kernel_shape", 3, 3), attrInts("strides", 2, 2))
	size = (size-3)/2 + 1

	for _, layer := range []struct {
		name string
		down bool
	}{
		{"conv32_1", false}, {"conv32_2", false}, {"conv32_3", false},
		{"conv64_down", true}, {"conv64_1", false}, {"conv64_2", false}, {"conv64_3", false},
		{"conv128_down", true}, {"conv128_1", false}, {"conv128_2", false},
		{"conv256_down", true}, {"conv256_1", false}, {"conv256_2", false},
		{"conv256_down_out", true},
	} {
		if layer.down {
			x, ch, size = b.residualDown(layer.name, x, ch, size)
		} else {
			x = b.residual(layer.name, x, ch)
		}
	}

	x = b.node("ReduceMean", "global_avg", []string{x}, attrInts("axes", 2, 3), attrInt("keepdims", 0))
	fc := b.weight("fc", int(ch), 128)
	out := b.node("MatMul", "fc", []string{x, b.initF32("fc/W", []int64{ch, 128}, fc)})
	b.rename(out, "output")
	b.g.Output = append(b.g.Output, valueInfo("output", n, dim{size: 128}))
	if err := b.w.checkAllUsed(nil); err != nil {
		return nil, err
	}
	return b.model("face-api FaceRecognitionNet (dlib ResNet, public domain weights); input NHWC RGB 0..255 [N,150,150,3]; output [N,128]")
}

// scaledConv adds conv + bias, folds face-api's scale layer (x*weights+biases)
// into it, and applies ReLU when relu is set. It returns the output channels.
func (b *builder) scaledConv(name, x string, in int64, k int, s convSpec, relu bool) (string, int64) {
	filt := b.weight(name+"/conv/filters", k, k, int(in), -1)
	var out int
	if t, ok := b.w.tensors[name+"/conv/filters"]; ok && len(t.Shape) == 4 {
		out = t.Shape[3]
	}
	if b.err != nil || out == 0 {
		b.fail(fmt.Errorf("%w: %s: missing conv filters %s", ErrBadWeights, b.w.model, name))
		return x, in
	}
	bias := b.weight(name+"/conv/bias", out)
	sw := b.weight(name+"/scale/weights", out)
	sb := b.weight(name+"/scale/biases", out)
	w := hwioToOIHW(filt, k, k, int(in), out)
	per := int(in) * k * k
	fb := make([]float32, out)
	for o := 0; o < out; o++ {
		for i := 0; i < per; i++ {
			w[o*per+i] = float32(float64(w[o*per+i]) * float64(sw[o]))
		}
		fb[o] = float32(float64(float64(bias[o])*float64(sw[o])) + float64(sb[o]))
	}
	y := b.conv(name, x, w, [4]int64{int64(out), in, int64(k), int64(k)}, fb, s)
	if relu {
		y = b.node("Relu", name+"/relu", []string{y})
	}
	return y, int64(out)
}

// residual: relu(conv2(relu(conv1(x))) + x), both 3x3 "same".
func (b *builder) residual(name, x string, ch int64) string {
	same := convSpec{stride: 1, pads: [4]int64{1, 1, 1, 1}}
	y, _ := b.scaledConv(name+"/conv1", x, ch, 3, same, true)
	y, _ = b.scaledConv(name+"/conv2", y, ch, 3, same, false)
	y = b.node("Add", name+"/add", []string{y, x})
	return b.node("Relu", name+"/relu", []string{y})
}

// residualDown: conv1 3x3 stride 2 valid + ReLU, conv2 3x3 same; shortcut is a
// 2x2/2 average pool zero-padded along channels; when the branches differ in
// size a zero row and column are appended to the conv branch (face-api's
// isAdjustShape).
func (b *builder) residualDown(name, x string, ch, size int64) (string, int64, int64) {
	y, out := b.scaledConv(name+"/conv1", x, ch, 3, convSpec{stride: 2}, true)
	y, _ = b.scaledConv(name+"/conv2", y, out, 3, convSpec{stride: 1, pads: [4]int64{1, 1, 1, 1}}, false)
	convSize := (size-3)/2 + 1
	poolSize := size / 2
	var pooled string
	if out == ch {
		pooled = b.node("AveragePool", name+"/pool", []string{x}, attrInts("kernel_shape", 2, 2), attrInts("strides", 2, 2))
	} else {
		// avgPool 2x2/2 then zero channels appended, as one 2x2/2 conv with
		// weights 0.25 on the diagonal: a Pad would make ONNX Runtime leave its
		// blocked (NCHWc) layout and reorder around every later Add.
		w := make([]float32, out*ch*4)
		for c := int64(0); c < ch; c++ {
			for k := int64(0); k < 4; k++ {
				w[(c*ch+c)*4+k] = 0.25
			}
		}
		pooled = b.conv(name+"/pool", x, w, [4]int64{out, ch, 2, 2}, nil, convSpec{stride: 2})
	}
	if convSize != poolSize {
		if poolSize-convSize != 1 {
			b.fail(fmt.Errorf("%s: unexpected branch sizes %d and %d", name, convSize, poolSize))
		}
		y = b.node("Pad", name+"/pad_spatial", []string{y, b.initI64(name+"/pad_spatial/pads", 0, 0, 0, 0, 0, 0, 1, 1)})
	}
	y = b.node("Add", name+"/add", []string{pooled, y})
	return b.node("Relu", name+"/relu", []string{y}), out, poolSize
}
