package awstest_test

import (
	"strings"
	"testing"

	"github.com/facefleet/facefleet/internal/awstest"
)

// Past its limit the buffer keeps the latest output, not the first.
func TestLogBufferKeepsLatest(t *testing.T) {
	b := awstest.NewLogBuffer(10)
	b.Write([]byte("early output, long enough\n"))
	b.Write([]byte("latest\n"))
	got := b.String()
	if strings.Contains(got, "early") || !strings.HasSuffix(got, "latest\n") || !strings.HasPrefix(got, "[earlier output dropped]") {
		t.Fatalf("String() = %q; want the drop note and the latest line only", got)
	}
}
