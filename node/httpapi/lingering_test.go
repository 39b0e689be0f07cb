package httpapi

import "testing"

func TestLingerBytesDefaultsAfterTheValueLimit(t *testing.T) {
	for _, tc := range []struct {
		maxValue, flag, want int64
	}{
		{1 << 20, 0, 4 << 20},          // the default: 4 x 1 MiB
		{1 << 10, 0, minLingerBytes},   // a small limit still drains 4 MiB
		{16 << 20, 0, 64 << 20},        // 4 x the limit
		{256 << 20, 0, MaxLingerBytes}, // capped (the largest --max-value-bytes)
		{1 << 20, 123, 123},            // the flag wins
	} {
		if got := LingerBytes(tc.maxValue, tc.flag); got != tc.want {
			t.Errorf("--max-value-bytes %d --http-linger-bytes %d: LingerBytes = %d, want %d", tc.maxValue, tc.flag, got, tc.want)
		}
	}
}
