package fileblob

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncData is fdatasync(2): the log's appended bytes and its size, without
// the modification time the log does not need.
func syncData(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

// syncFS is syncfs(2) on the file system holding dir: every dirty file and
// folder entry there, in one call.
func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}
