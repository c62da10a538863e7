package convert

// Mean RGB values face-api's TinyFaceDetector subtracts.
var tinyMeanRGB = [3]float32{117.001, 114.697, 97.404}

// tinyFaceDetector builds face-api's TinyFaceDetector (tiny YOLOv2 with
// separable convs, src/tinyYolov2/TinyYolov2Base.runMobilenet): input
// [N,H,W,3] with H,W dynamic multiples of 32, output the raw conv8 map
// [N,H/32,W/32,25] in NHWC (no sigmoid, no decoding).
func tinyFaceDetector(w *Weights) ([]byte, error) {
	b := newBuilder(w, "tiny_face_detector")
	n, h, wd := dim{param: "N"}, dim{param: "H"}, dim{param: "W"}
	x := b.input(n, h, wd, dim{size: 3})

	// conv0: plain 3x3 conv, valid padding, bias, leaky ReLU.
	f0 := b.weight("conv0/filters", 3, 3, 3, 16)
	x = b.conv("conv0", x, hwioToOIHW(f0, 3, 3, 3, 16), [4]int64{16, 3, 3, 3}, b.weight("conv0/bias", 16),
		convSpec{stride: 1, norm: &inputNorm{tinyMeanRGB, 255}, interleaved: true})
	x = b.node("LeakyRelu", "conv0/leaky", []string{x}, attrFloat("alpha", 0.1))
	x = b.maxPoolSame("pool0", x, 2)

	ch := 16
	for i, out := range []int{32, 64, 128, 256, 512} {
		name := "conv" + string(rune('1'+i))
		x = b.separable(name, x, ch, out, 1, [4]int64{1, 1, 1, 1})
		x = b.node("LeakyRelu", name+"/leaky", []string{x}, attrFloat("alpha", 0.1))
		stride := int64(2)
		if i == 4 {
			stride = 1
		}
		x = b.maxPoolSame("pool"+string(rune('1'+i)), x, stride)
		ch = out
	}

	f8 := b.weight("conv8/filters", 1, 1, ch, 25)
	x = b.conv("conv8", x, hwioToOIHW(f8, 1, 1, ch, 25), [4]int64{25, int64(ch), 1, 1}, b.weight("conv8/bias", 25), convSpec{stride: 1})
	out := b.node("Transpose", "to_nhwc", []string{x}, attrInts("perm", 0, 2, 3, 1))
	b.rename(out, "output")
	b.g.Output = append(b.g.Output, valueInfo("output", n, dim{param: "H/32"}, dim{param: "W/32"}, dim{size: 25}))
	if err := b.w.checkAllUsed(nil); err != nil {
		return nil, err
	}
	return b.model("face-api TinyFaceDetector; input NHWC RGB 0..255 [N,H,W,3] (H,W multiples of 32); output raw conv map [N,H/32,W/32,25], channel = anchor*5 + (tx,ty,tw,th,score)")
}

// maxPoolSame is TF's 2x2 max pool with "same" padding (extra pixel at the end).
func (b *builder) maxPoolSame(name, x string, stride int64) string {
	return b.node("MaxPool", name, []string{x}, attrInts("kernel_shape", 2, 2), attrInts("strides", stride, stride), attrString("auto_pad", "SAME_UPPER"))
}

// separable adds TF's separableConv2d + bias: a 3x3 depthwise conv (stride,
// pads) followed by a 1x1 pointwise conv carrying the bias.
func (b *builder) separable(name, x string, in, out int, stride int64, pads [4]int64) string {
	dw := b.weight(name+"/depthwise_filter", 3, 3, in, 1)
	pw := b.weight(name+"/pointwise_filter", 1, 1, in, out)
	bias := b.weight(name+"/bias", out)
	x = b.conv(name+"/depthwise", x, depthwiseToONNX(dw, 3, 3, in), [4]int64{int64(in), 1, 3, 3}, nil, convSpec{stride: stride, pads: pads, group: int64(in)})
	return b.conv(name+"/pointwise", x, hwioToOIHW(pw, 1, 1, in, out), [4]int64{int64(out), int64(in), 1, 1}, bias, convSpec{stride: 1})
}
