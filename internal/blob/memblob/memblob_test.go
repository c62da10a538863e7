package memblob_test

import (
	"testing"

	"github.com/facefleet/facefleet/internal/blob"
	"github.com/facefleet/facefleet/internal/blob/blobtest"
	"github.com/facefleet/facefleet/internal/blob/memblob"
)

func TestConformance(t *testing.T) {
	blobtest.Run(t, blobtest.Harness{New: func(t *testing.T) blob.Store { return memblob.New() }})
}
