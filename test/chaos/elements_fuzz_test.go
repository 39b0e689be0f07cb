package chaos

import (
	"fmt"
	"testing"
)

// FuzzElementsRoundTrip: whatever bytes a set key holds, re-encoding the
// elements a client read and reading them again gives the same set, so a
// client's write-back never drops an element it saw.
func FuzzElementsRoundTrip(f *testing.F) {
	for _, s := range []string{"", "init", "init,a1-1", ",,a,,b,", "a0-1,a0-1", "\x00,\xff"} {
		f.Add([]byte(s), []byte("a2-3"))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		set := Elements([][]byte{a, b})
		again := Elements([][]byte{EncodeElements(set)})
		if fmt.Sprint(set) != fmt.Sprint(again) {
			t.Fatalf("Elements(%q, %q) = %v; after EncodeElements and Elements: %v", a, b, set, again)
		}
		for e := range set {
			if e == "" {
				t.Fatalf("Elements(%q, %q) holds an empty element", a, b)
			}
		}
	})
}
