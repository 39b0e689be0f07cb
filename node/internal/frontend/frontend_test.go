package frontend

import (
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/node/metrics"
)

func TestWithDefaultsFillsOnlyWhatIsEmpty(t *testing.T) {
	s := Shared{}.WithDefaults()
	if s.Metrics == nil || s.Logger == nil || s.Guard == nil || s.Now == nil {
		t.Fatalf("a zero Shared with defaults left something empty: %+v", s)
	}
	m, log := metrics.New(), zap.NewExample()
	epoch := time.Unix(7, 0)
	s = Shared{Metrics: m, Logger: log, Now: func() time.Time { return epoch }}.WithDefaults()
	if s.Metrics != m || s.Logger != log || !s.Now().Equal(epoch) || s.Guard == nil {
		t.Fatalf("WithDefaults replaced what was given: %+v", s)
	}
}
