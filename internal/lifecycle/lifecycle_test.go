package lifecycle

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

func TestStartRunsOnceAndCloseWaits(t *testing.T) {
	var w Worker
	var runs, ended atomic.Int32
	run := func(ctx context.Context) {
		runs.Add(1)
		<-ctx.Done()
		ended.Add(1)
	}
	if err := w.Start(context.Background(), "test worker", run); err != nil {
		t.Fatalf("first Start: %v", err)
	}
	if err := w.Start(context.Background(), "test worker", run); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start: %v, want ErrStarted", err)
	}
	w.Close()
	if runs.Load() != 1 || ended.Load() != 1 {
		t.Fatalf("after Close: %d runs, %d ended; want 1 and 1", runs.Load(), ended.Load())
	}
	w.Close() // a second Close is a no-op
	if err := w.Start(context.Background(), "test worker", run); !errors.Is(err, ErrStarted) {
		t.Fatalf("Start after Close: %v, want ErrStarted", err)
	}
}

func TestStartAfterCloseIsRefused(t *testing.T) {
	var w Worker
	w.Close()
	if err := w.Start(context.Background(), "test worker", func(context.Context) { t.Error("ran after Close") }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}
}

func TestCloseEndsTheRunWhenItsParentEnds(t *testing.T) {
	var w Worker
	ctx, cancel := context.WithCancel(context.Background())
	if err := w.Start(ctx, "test worker", func(ctx context.Context) { <-ctx.Done() }); err != nil {
		t.Fatal(err)
	}
	cancel()
	w.Close() // returns: run ended with its parent
}
