//go:build !linux

package fileblob

import (
	"os"
	"syscall"
)

func syncData(f *os.File) error { return f.Sync() }

// syncFS is sync(2): without syncfs(2), every file system.
func syncFS(string) error {
	syscall.Sync()
	return nil
}
