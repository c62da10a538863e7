//go:build !unix

package webtier

import "net"

// peerClosed cannot peek at a socket here: callers that go away keep their slot
// until their answer or the timeout.
func peerClosed(net.Conn) bool { return false }
