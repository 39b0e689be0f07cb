package defaults

import (
	"testing"
	"time"
)

func TestSetFillsOnlyZeroFields(t *testing.T) {
	var cfg struct {
		N        int
		Rate     int64
		Interval time.Duration
		Name     string
	}
	cfg.Rate = 7
	Set(&cfg.N, 3)
	Set(&cfg.Rate, 8)
	Set(&cfg.Interval, time.Second)
	Set(&cfg.Name, "n1")
	if cfg.N != 3 || cfg.Rate != 7 || cfg.Interval != time.Second || cfg.Name != "n1" {
		t.Fatalf("after Set: %+v, want N 3, Rate 7 (kept), Interval 1s, Name n1", cfg)
	}
}
