package convert

// LandmarkSize is the fixed input size of the 68-point landmark net.
const LandmarkSize = 112

// landmarkNet builds face-api's FaceLandmark68Net (src/faceFeatureExtractor
// denseBlock4 x4, 7x7/2 average pool, fully connected to 136): input
// [N,112,112,3], output [N,136], the values runNet returns before face-api's
// JS postProcess.
func landmarkNet(w *Weights) ([]byte, error) {
	b := newBuilder(w, "face_landmark_68")
	n := dim{param: "N"}
	// The first conv pads ("same"), so the normalisation stays a graph op.
	x := b.normalize(b.input(n, dim{size: LandmarkSize}, dim{size: LandmarkSize}, dim{size: 3}), inputNorm{faceMeanRGB, 255}, LandmarkSize)
	size, ch := int64(LandmarkSize), 3
	for i, out := range []int{32, 64, 128, 256} {
		x = b.denseBlock4(name("dense", i), x, ch, out, size, i == 0)
		size = (size + 1) / 2
		ch = out
	}
	x = b.node("AveragePool", "pool", []string{x}, attrInts("kernel_shape", 7, 7), attrInts("strides", 2, 2))
	x = b.node("Flatten", "flatten", []string{x}, attrInt("axis", 1))
	fw := b.weight("fc/weights", ch, 136)
	x = b.node("MatMul", "fc/matmul", []string{x, b.initF32("fc/W", []int64{int64(ch), 136}, fw)})
	out := b.node("Add", "fc/add", []string{x, b.initF32("fc/B", []int64{136}, b.weight("fc/bias", 136))})
	b.rename(out, "output")
	b.g.Output = append(b.g.Output, valueInfo("output", n, dim{size: 136}))
	if err := b.w.checkAllUsed(nil); err != nil {
		return nil, err
	}
	return b.model("face-api FaceLandmark68Net; input NHWC RGB 0..255 [N,112,112,3]; output [N,136] interleaved x,y relative to the input square (before face-api's postProcess)")
}

func name(prefix string, i int) string { return prefix + string(rune('0'+i)) }

// denseBlock4 follows face-api's denseBlock4 with isScaleDown: the first conv
// has stride 2 ("same"), the others stride 1.
func (b *builder) denseBlock4(prefix, x string, in, out int, size int64, first bool) string {
	lo, hi := samePads(size, 3, 2)
	down := [4]int64{lo, lo, hi, hi}
	one := [4]int64{1, 1, 1, 1}
	var out1 string
	if first {
		f := b.weight(prefix+"/conv0/filters", 3, 3, in, out)
		out1 = b.conv(prefix+"/conv0", x, hwioToOIHW(f, 3, 3, in, out), [4]int64{int64(out), int64(in), 3, 3}, b.weight(prefix+"/conv0/bias", out), convSpec{stride: 2, pads: down, interleaved: true})
	} else {
		out1 = b.separable(prefix+"/conv0", x, in, out, 2, down)
	}
	out1 = b.node("Relu", prefix+"/relu0", []string{out1})
	// face-api adds the branches as in3 = relu(out1+out2), in4 =
	// relu(out1+(out2+out3)), out = relu(out1+(out2+(out3+out4))). Running sums
	// (out1+out2, +out3, +out4) give the same values (up to float rounding
	// order) with every Add taking a conv output used nowhere else, which ONNX
	// Runtime fuses into that conv.
	s := b.node("Add", prefix+"/add1", []string{out1, b.separable(prefix+"/conv1", out1, out, out, 1, one)})
	s = b.node("Add", prefix+"/add2", []string{s, b.separable(prefix+"/conv2", b.node("Relu", prefix+"/relu1", []string{s}), out, out, 1, one)})
	s = b.node("Add", prefix+"/add3", []string{s, b.separable(prefix+"/conv3", b.node("Relu", prefix+"/relu2", []string{s}), out, out, 1, one)})
	return b.node("Relu", prefix+"/relu3", []string{s})
}
