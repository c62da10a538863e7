package awstest

import (
	"bytes"
	"sync"
)

// LogBuffer keeps a child process's output (stdout and stderr at once) for
// failure messages. Past its limit it drops what it held, so a chatty process
// cannot exhaust memory and the latest output, the likeliest to explain a
// failure, survives.
type LogBuffer struct {
	limit int
	mu    sync.Mutex
	buf   bytes.Buffer
}

// NewLogBuffer keeps about limit bytes.
func NewLogBuffer(limit int) *LogBuffer { return &LogBuffer{limit: limit} }

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > b.limit {
		b.buf.Reset()
		b.buf.WriteString("[earlier output dropped]\n")
	}
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
