package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Sentinels of a refused Start.
var (
	// ErrStarted: Start was called before.
	ErrStarted = errors.New("already started")
	// ErrClosed: Close was called before Start.
	ErrClosed = errors.New("closed")
)

// Worker owns one goroutine. The zero value is ready; it must not be
// copied after Start.
type Worker struct {
	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// Start runs run in a goroutine, with a context derived from ctx that
// Close cancels; run returns when its context ends. A second Start, or a
// Start after Close, runs nothing and returns an error naming what and
// wrapping ErrStarted or ErrClosed.
func (w *Worker) Start(ctx context.Context, what string, run func(ctx context.Context)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.started:
		return fmt.Errorf("%s: %w", what, ErrStarted)
	case w.closed:
		return fmt.Errorf("%s: %w", what, ErrClosed)
	}
	w.started = true
	ctx, w.cancel = context.WithCancel(ctx)
	w.done = make(chan struct{})
	go func() {
		defer close(w.done)
		run(ctx)
	}()
	return nil
}

// Close cancels the goroutine's context and waits for run to return. It
// may be called more than once, concurrently, and before Start (which then
// refuses to start).
func (w *Worker) Close() {
	w.mu.Lock()
	w.closed = true
	cancel, done := w.cancel, w.done
	w.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}
