package convert

import (
	"fmt"
	"math"
	"strings"
)

// SSDSize is the fixed input size of SSD MobileNetV1; SSDAnchors its box count.
const (
	SSDSize    = 512
	SSDAnchors = 5118
)

// ssdBNEpsilon is the epsilon face-api passes to tf.batchNorm (float32 0.001).
const ssdBNEpsilon = 0.0010000000474974513

// ssdMobilenetV1 builds face-api's SsdMobilenetv1 (src/ssdMobilenetv1) up to,
// not including, its box decoding: input [N,512,512,3]; outputs `boxes`
// [N,5118,4] raw box encodings (ty,tx,th,tw), `scores` [N,5118] = sigmoid of
// class 1, and `anchors` [5118,4] (ymin,xmin,ymax,xmax in 0..1) to decode with.
func ssdMobilenetV1(w *Weights) ([]byte, error) {
	b := newBuilder(w, "ssd_mobilenetv1")
	n := dim{param: "N"}
	b.g.Input = append(b.g.Input, valueInfo("input", n, dim{size: SSDSize}, dim{size: SSDSize}, dim{size: 3}))
	x := b.node("Div", "normalize/div", []string{"input", b.initF32("normalize/divisor", nil, []float32{127.5})})
	x = b.node("Sub", "normalize/sub", []string{x, b.initF32("normalize/one", nil, []float32{1})})
	x = b.node("Transpose", "to_nchw", []string{x}, attrInts("perm", 0, 3, 1, 2))
	zero := b.initF32("clip/min", nil, []float32{0})
	six := b.initF32("clip/max", nil, []float32{6})

	size := int64(SSDSize)
	ch := 3
	// pointwise is face-api's pointwiseConvLayer: conv (any kernel, "same") +
	// bn offset, clipped to [0,6].
	pointwise := func(prefix string, stride int64) string {
		name := prefix + "_pointwise"
		t, ok := b.w.tensors[name+"/weights"]
		if !ok || len(t.Shape) != 4 || t.Shape[2] != ch {
			b.fail(fmt.Errorf("%w: %s: %s/weights missing or not [k,k,%d,out]", ErrBadWeights, b.w.model, name, ch))
			return x
		}
		k, out := t.Shape[0], t.Shape[3]
		f := b.weight(name+"/weights", k, k, ch, out)
		off := b.weight(name+"/convolution_bn_offset", out)
		lo, hi := samePads(size, int64(k), stride)
		y := b.conv(name, x, hwioToOIHW(f, k, k, ch, out), [4]int64{int64(out), int64(ch), int64(k), int64(k)}, off,
			convSpec{stride: stride, pads: [4]int64{lo, lo, hi, hi}})
		size = (size + stride - 1) / stride
		ch = out
		return b.node("Clip", name+"/clip", []string{y, zero, six})
	}
	// depthwise is face-api's depthwiseConvLayer with its batch norm folded in.
	depthwise := func(prefix string, stride int64) string {
		name := prefix + "_depthwise"
		f := b.weight(name+"/depthwise_weights", 3, 3, ch, 1)
		gamma := b.weight(name+"/BatchNorm/gamma", ch)
		beta := b.weight(name+"/BatchNorm/beta", ch)
		mean := b.weight(name+"/BatchNorm/moving_mean", ch)
		variance := b.weight(name+"/BatchNorm/moving_variance", ch)
		wt := depthwiseToONNX(f, 3, 3, ch)
		bias := make([]float32, ch)
		for c := 0; c < ch; c++ {
			s := float64(gamma[c]) / math.Sqrt(float64(variance[c])+ssdBNEpsilon)
			for i := 0; i < 9; i++ {
				wt[c*9+i] = float32(float64(wt[c*9+i]) * s)
			}
			bias[c] = float32(float64(beta[c]) - float64(float64(mean[c])*s))
		}
		lo, hi := samePads(size, 3, stride)
		y := b.conv(name, x, wt, [4]int64{int64(ch), 1, 3, 3}, bias, convSpec{stride: stride, pads: [4]int64{lo, lo, hi, hi}, group: int64(ch)})
		size = (size + stride - 1) / stride
		return b.node("Clip", name+"/clip", []string{y, zero, six})
	}

	x = pointwise("MobilenetV1/Conv2d_0", 2)
	var conv11 string
	var conv11Ch int
	for i := 1; i <= 13; i++ {
		stride := int64(1)
		if i == 2 || i == 4 || i == 6 || i == 12 {
			stride = 2
		}
		x = depthwise(fmt.Sprintf("MobilenetV1/Conv2d_%d", i), stride)
		x = pointwise(fmt.Sprintf("MobilenetV1/Conv2d_%d", i), 1)
		if i == 11 {
			conv11, conv11Ch = x, ch
		}
	}
	features, featuresCh := x, ch
	// Extra feature maps: Prediction/Conv2d_0..7, odd ones stride 2.
	maps := []string{conv11, features}
	mapCh := []int{conv11Ch, featuresCh}
	for i := 0; i <= 7; i++ {
		x = pointwise(fmt.Sprintf("Prediction/Conv2d_%d", i), int64(1+i%2))
		if i%2 == 1 {
			maps, mapCh = append(maps, x), append(mapCh, ch)
		}
	}

	var boxes, classes []string
	for i, m := range maps {
		pre := fmt.Sprintf("Prediction/BoxPredictor_%d", i)
		boxes = append(boxes, b.predictor(pre+"/BoxEncodingPredictor", m, mapCh[i], 4))
		classes = append(classes, b.predictor(pre+"/ClassPredictor", m, mapCh[i], 3))
	}
	bx := b.node("Concat", "boxes/concat", boxes, attrInt("axis", 1))
	cl := b.node("Concat", "classes/concat", classes, attrInt("axis", 1))
	cl = b.node("Slice", "scores/slice", []string{cl, b.initI64("scores/starts", 1), b.initI64("scores/ends", 2), b.initI64("scores/axes", 2)})
	cl = b.node("Sigmoid", "scores/sigmoid", []string{cl})
	sc := b.node("Squeeze", "scores/squeeze", []string{cl, b.initI64("scores/squeeze_axes", 2)})
	b.rename(bx, "boxes")
	b.rename(sc, "scores")

	anchors := b.weight("Output/extra_dim", 1, SSDAnchors, 4)
	an := b.node("Identity", "anchors/identity", []string{b.initF32("Output/extra_dim", []int64{SSDAnchors, 4}, anchors)})
	b.rename(an, "anchors")
	b.g.Output = append(b.g.Output,
		valueInfo("boxes", n, dim{size: SSDAnchors}, dim{size: 4}),
		valueInfo("scores", n, dim{size: SSDAnchors}),
		valueInfo("anchors", dim{size: SSDAnchors}, dim{size: 4}))
	if err := b.w.checkAllUsed(ssdUnused); err != nil {
		return nil, err
	}
	return b.model("face-api SsdMobilenetv1; input NHWC RGB 0..255 [N,512,512,3]; outputs boxes [N,5118,4] raw encodings (ty,tx,th,tw), scores [N,5118] sigmoid(class 1), anchors [5118,4] (ymin,xmin,ymax,xmax)")
}

// ssdUnused are tensors of the original TF graph that face-api does not use
// either: int32 shape constants and the TF preprocessing constants.
func ssdUnused(t *Tensor) bool {
	return t.I != nil || strings.HasPrefix(t.Name, "Preprocessor/")
}

// predictor is face-api's 1x1 box/class predictor conv, reshaped like TF's
// NHWC [N,-1,per] (so the anchor order is row, column, anchor).
func (b *builder) predictor(name, x string, in, per int) string {
	t, ok := b.w.tensors[name+"/weights"]
	if !ok || len(t.Shape) != 4 {
		b.fail(fmt.Errorf("%w: %s: %s/weights missing", ErrBadWeights, b.w.model, name))
		return x
	}
	out := t.Shape[3]
	f := b.weight(name+"/weights", 1, 1, in, out)
	bias := b.weight(name+"/biases", out)
	y := b.conv(name, x, hwioToOIHW(f, 1, 1, in, out), [4]int64{int64(out), int64(in), 1, 1}, bias, convSpec{stride: 1})
	y = b.node("Transpose", name+"/to_nhwc", []string{y}, attrInts("perm", 0, 2, 3, 1))
	return b.node("Reshape", name+"/reshape", []string{y, b.initI64(name+"/shape", 0, -1, int64(per))})
}
