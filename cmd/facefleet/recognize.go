package main

import (
	"context"
	"errors"
	"io"
)

// TODO(owner of this file): replace with the real command.
func runRecognize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("recognize: not built yet")
}
