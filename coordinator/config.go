package coordinator

import (
	"fmt"
	"time"

	"github.com/dynkv/dynkv/internal/defaults"
	"go.uber.org/zap"
)

// Config tunes a Coordinator. The zero value works: the defaults are
// SPEC section 2's (N=3, R=2, W=2) and a 5s request timeout.
type Config struct {
	// N is the replica count of a key: the length of its preference list
	// (capped at the ring's member count by the ring itself).
	N int
	// R and W are the default read and write quorums; a request may
	// override them, capped at N.
	R, W int
	// RequestTimeout bounds a client request, and the background merges and
	// read repairs that outlive it.
	RequestTimeout time.Duration
	// LocalBlindWrites, when set, makes a write without a context supersede
	// only what the coordinating replica holds, saving the round trip that
	// gathers the key's context from R replicas first (see the package doc).
	LocalBlindWrites bool
	// GatherBlindWrites, when set, makes every blind write read the key's
	// context from R replicas first, the way writes the covering merge
	// cannot serve go (cover.go); by default a replica coordinating a blind
	// write skips that read when it can prove it unnecessary. For tests of
	// the gather path and for measuring what the covering merge saves.
	GatherBlindWrites bool
	// GatherHedge is how long a blind write's context read waits for the
	// R-1 peers it asked first before it asks the key's other replicas
	// too; default DefaultGatherHedge. A failed answer asks the next
	// replica at once.
	GatherHedge time.Duration
	Logger      *zap.Logger
	// Now is the clock; unused by the quorum logic itself but kept so every
	// time source of a node is injectable.
	Now func() time.Time
}

// DefaultRequestTimeout is --request-timeout's default.
const DefaultRequestTimeout = 5 * time.Second

// DefaultGatherHedge is well above a loaded peer's usual get round trip
// (a few ms), so that the extra reads happen only for a peer that is
// stalled or gone but not yet declared dead.
const DefaultGatherHedge = 50 * time.Millisecond

func (c Config) withDefaults() Config {
	defaults.Set(&c.N, 3)
	defaults.Set(&c.R, min(2, c.N))
	defaults.Set(&c.W, min(2, c.N))
	defaults.Set(&c.RequestTimeout, DefaultRequestTimeout)
	defaults.Set(&c.GatherHedge, DefaultGatherHedge)
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports a configuration no request could run with.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.N < 1:
		return fmt.Errorf("coordinator: replicas (N) must be at least 1, got %d", c.N)
	case c.R < 1 || c.R > c.N:
		return fmt.Errorf("coordinator: read quorum R must be between 1 and N=%d, got %d", c.N, c.R)
	case c.W < 1 || c.W > c.N:
		return fmt.Errorf("coordinator: write quorum W must be between 1 and N=%d, got %d", c.N, c.W)
	case c.RequestTimeout < 0:
		return fmt.Errorf("coordinator: request timeout must not be negative, got %s", c.RequestTimeout)
	case c.GatherHedge < 0:
		return fmt.Errorf("coordinator: gather hedge must not be negative, got %s", c.GatherHedge)
	}
	return nil
}
