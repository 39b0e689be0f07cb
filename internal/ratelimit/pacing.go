package ratelimit

import (
	"fmt"
	"time"
)

// CheckPacing checks a Bucket's guarantee on a record of admissions, for
// tests: the bytes admitted up to each admission (at[i], sizes[i] bytes,
// since start) never exceed burst + rate*elapsed.
func CheckPacing(start time.Time, at []time.Time, sizes []int, rate, burst float64) error {
	total := 0.0
	for i := range at {
		total += float64(sizes[i])
		allowed := burst + rate*at[i].Sub(start).Seconds()
		if total > allowed+1 { // +1: a nanosecond of rounding
			return fmt.Errorf("after admission %d (%d bytes) %.0f bytes admitted in %s, more than burst %.0f + rate %.0f/s allows (%.0f)",
				i, sizes[i], total, at[i].Sub(start), burst, rate, allowed)
		}
	}
	return nil
}
