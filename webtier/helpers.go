package webtier

import (
	"crypto/rand"
	"net/url"
)

func urlUnescape(s string) (string, error) { return url.PathUnescape(s) }

func randRead(b []byte) (int, error) { return rand.Read(b) }
