//go:build unix

package webtier

import (
	"errors"
	"net"
	"syscall"
)

// peerClosed reports whether the peer of conn closed it (an orderly shutdown or a
// reset), without consuming anything: it peeks at the socket without blocking.
// A client that only half-closes its sending side (shutdown(SHUT_WR)) after its
// request also reads as gone; HTTP clients do not do that.
func peerClosed(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	_ = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil:
			closed = n == 0 // 0 bytes: EOF; more: a pipelined request
		case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.EWOULDBLOCK), errors.Is(err, syscall.EINTR):
		default:
			closed = true // reset or another socket error
		}
		return true // never wait for readiness
	})
	return closed
}
