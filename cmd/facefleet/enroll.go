package main

import (
	"context"
	"errors"
	"io"
)

// TODO(owner of this file): replace with the real command.
func runEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("enroll: not built yet")
}
