// Package models holds the SHA-256 sums of the ONNX files that models/convert
// produces from face-api's weights; the converter and its tests check against them.
package models

import _ "embed"

//go:embed SHA256SUMS
var sums string

// SHA256SUMS returns the committed sums (sha256sum format: "<hex>  <file>").
func SHA256SUMS() string { return sums }
