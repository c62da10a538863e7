package engine

import (
	"context"
	"fmt"
	"math"
)

// SSDModel is face-api's SSD MobileNetV1 face detector (models/README.md). The
// engine runs it only as a second opinion: when the tiny detector finds no face
// in a small, square image even with a border added, the image is accepted as
// a tight face crop only if the SSD sees a face in it.
const SSDModel = "ssd_mobilenetv1.onnx"

const ssdInput = 512

// ssdBest runs the SSD on img (padded to a square at the bottom/right, resized
// to 512, as face-api does) and returns its most confident face box in image
// pixels with its score (0 and a zero box when the model gives nothing).
func (e *Engine) ssdBest(ctx context.Context, img *RGB, buf *buffers) (detection, error) {
	n := ssdInput
	buf.det = grow(buf.det, n*n*3)
	padResize(img, rect{0, 0, img.W, img.H}, 0, 0, n, buf.det, &buf.rs)
	out, err := e.ssd.Run(ctx, buf.det, []int64{1, int64(n), int64(n), 3})
	if err != nil {
		return detection{}, fmt.Errorf("engine: ssd: %w", err)
	}
	boxes, scores, anchors := out["boxes"], out["scores"], out["anchors"]
	k := len(scores.Data)
	if k == 0 || len(boxes.Data) != 4*k || len(anchors.Data) != 4*k {
		return detection{}, fmt.Errorf("engine: ssd outputs have %d scores, %d box values, %d anchor values; want k, 4k, 4k", k, len(boxes.Data), len(anchors.Data))
	}
	best := -1
	for i, s := range scores.Data {
		if !math.IsNaN(float64(s)) && (best < 0 || s > scores.Data[best]) {
			best = i
		}
	}
	if best < 0 {
		return detection{}, nil
	}
	a, en := anchors.Data[4*best:4*best+4], boxes.Data[4*best:4*best+4]
	ha, wa := float64(a[2]-a[0]), float64(a[3]-a[1])
	cy, cx := float64(a[0])+ha/2, float64(a[1])+wa/2
	y, x := float64(en[0])/10*ha+cy, float64(en[1])/10*wa+cx
	h2, w2 := math.Exp(float64(en[2])/5)*ha/2, math.Exp(float64(en[3])/5)*wa/2
	clamp := func(v float64) float64 { return math.Max(0, math.Min(1, v)) }
	side := float64(max(img.W, img.H))
	y0, x0, y1, x1 := clamp(y-h2)*side, clamp(x-w2)*side, clamp(y+h2)*side, clamp(x+w2)*side
	if !finite(y0, x0, y1, x1) {
		return detection{score: float64(scores.Data[best])}, nil
	}
	return detection{box: Box{X: x0, Y: y0, W: x1 - x0, H: y1 - y0}, score: float64(scores.Data[best])}, nil
}
