// Package frontend holds what the node's client front ends (node/httpapi
// and node/resp) take from it alike.
package frontend

import (
	"time"

	"go.uber.org/zap"

	"github.com/dynkv/dynkv/node/internal/authguard"
	"github.com/dynkv/dynkv/node/metrics"
)

// Shared is the part of a front end's Config every front end has.
type Shared struct {
	// Tokens are the accepted client tokens (--auth-token); none turns
	// authentication off. Guard delays and throttles wrong ones; one
	// guard serves every front end, so a source's failures count across
	// protocols.
	Tokens authguard.Tokens
	Guard  *authguard.Guard

	Metrics *metrics.Metrics
	Logger  *zap.Logger
	Now     func() time.Time
}

// WithDefaults fills what s leaves empty: its own registry, a logger that
// discards, a guard counting in that registry, the real clock.
func (s Shared) WithDefaults() Shared {
	if s.Metrics == nil {
		s.Metrics = metrics.New()
	}
	if s.Logger == nil {
		s.Logger = zap.NewNop()
	}
	if s.Guard == nil {
		s.Guard = authguard.New(s.Logger, &s.Metrics.Limits)
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	return s
}
