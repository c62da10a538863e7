package main

import (
	"context"
	"errors"
	"io"
)

// TODO(owner of this file): replace with the real command.
func runApptier(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("apptier: not built yet")
}
