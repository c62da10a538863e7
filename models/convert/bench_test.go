package convert_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/facefleet/facefleet/internal/ort"
	"github.com/facefleet/facefleet/internal/testenv"
)

// BenchmarkORT times one ONNX Runtime Run per model at the engine's sizes, one
// intra-op thread (as one worker uses). It reports the median as median-ms.
//
//	go test -run '^$' -bench ORT -benchtime 50x ./models/convert/
func BenchmarkORT(b *testing.B) {
	rt, err := ort.Init(testenv.ORTLib(b))
	if err != nil {
		b.Fatal(err)
	}
	dir := convertAll(b)
	for _, c := range []struct {
		name, model string
		shape       []int64
	}{
		{"tiny416", "tiny_face_detector.onnx", []int64{1, 416, 416, 3}},
		{"tiny224", "tiny_face_detector.onnx", []int64{1, 224, 224, 3}},
		{"tiny160", "tiny_face_detector.onnx", []int64{1, 160, 160, 3}},
		{"landmarks112", "face_landmark_68.onnx", []int64{1, 112, 112, 3}},
		{"recognition150", "face_recognition.onnx", []int64{1, 150, 150, 3}},
		{"ssd512", "ssd_mobilenetv1.onnx", []int64{1, 512, 512, 3}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := rt.NewSession(filepath.Join(dir, c.model), ort.SessionOptions{IntraOpThreads: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			in := testImage(c.shape, 9)
			ctx := context.Background()
			if _, err := s.Run(ctx, in, c.shape); err != nil { // warm-up
				b.Fatal(err)
			}
			times := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := s.Run(ctx, in, c.shape); err != nil {
					b.Fatal(err)
				}
				times = append(times, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
		})
	}
}
