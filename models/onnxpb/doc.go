// Package onnxpb holds the Go message types of ONNX's onnx.proto (IR version 8,
// ONNX 1.12, as Debian's libonnx-dev ships it). The generated onnx.pb.go is
// committed so that builds need no protoc; see README.md to regenerate it.
package onnxpb

//go:generate protoc -I/usr/include/onnx --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/facefleet/facefleet/models/onnxpb onnx.proto
