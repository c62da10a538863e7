//go:build !linux

package bigalloc

func adviseHuge([]byte) {}
