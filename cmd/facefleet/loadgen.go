package main

import (
	"context"
	"errors"
	"io"
)

// TODO(owner of this file): replace with the real command.
func runLoadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("loadgen: not built yet")
}
