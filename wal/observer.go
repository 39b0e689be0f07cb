package wal

import "time"

// Observer receives one call per fsync that made records durable, from the
// flusher goroutine, so it must be fast and must not call back into the
// log. Metrics use it for the fsync latency and group-commit batch size
// distributions, which counters in Stats cannot show.
type Observer interface {
	// ObserveSync reports an fsync that took d and made records records
	// of bytes bytes (framing included) durable. Under SyncPolicy
	// "always" that is one group-commit batch; with an interval it is
	// everything written since the previous fsync.
	ObserveSync(d time.Duration, records int, bytes int)
}

// syncObserved fsyncs the active segment, timing it for the observer when
// there is one, and reports the records and bytes it covered.
func (w *WAL) syncObserved(records, bytes int) error {
	o := w.opts.Observer
	if o == nil {
		return w.active.Sync()
	}
	start := time.Now()
	if err := w.active.Sync(); err != nil {
		return err
	}
	o.ObserveSync(time.Since(start), records, bytes)
	return nil
}
