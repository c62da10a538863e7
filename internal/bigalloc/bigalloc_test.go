package bigalloc

import "testing"

func TestSliceIsZeroedAndSized(t *testing.T) {
	for _, n := range []int{0, 1, Threshold / 4, Threshold + 12345} {
		s := Slice[float32](n)
		if len(s) != n || cap(s) != n {
			t.Fatalf("Slice(%d): len %d cap %d", n, len(s), cap(s))
		}
		for i, v := range s {
			if v != 0 {
				t.Fatalf("Slice(%d)[%d] = %v", n, i, v)
			}
		}
		if n > 0 {
			s[n-1] = 1 // writable to the end
		}
	}
}
