// Package e2e_test drives facefleet through real HTTP on 127.0.0.1: the embedded
// service with the real engine (TestEndToEndRealEngine), the same flow with the
// engine double (internal/enginetest, fast), and fault tests that kill and crash
// workers.
package e2e_test

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"

	"github.com/facefleet/facefleet/test/e2ekit"
)

// post sends data as a multipart file and returns status and body; a transport
// error fails the test (from any goroutine) and answers 0, "".
func post(t testing.TB, method, url, field, filename string, data []byte) (int, string) {
	t.Helper()
	code, body, err := e2ekit.Upload(http.DefaultClient, method, url, field, filename, data)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return 0, ""
	}
	return code, body
}

// randomPNG is a small noise image, distinct per seed.
func randomPNG(t testing.TB, seed uint64) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	img := image.NewGray(image.Rect(0, 0, 32, 32))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	img.Set(0, 0, color.Gray{Y: uint8(seed)})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func name(person int) string { return fmt.Sprintf("person%d", person) }

func httpGet(url string) (string, error) {
	res, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}
