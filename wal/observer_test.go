package wal

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// syncRecorder sums what the observer was told.
type syncRecorder struct {
	mu             sync.Mutex
	syncs          int
	records, bytes int
}

func (r *syncRecorder) ObserveSync(d time.Duration, records, bytes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.syncs++
	r.records += records
	r.bytes += bytes
}

func (r *syncRecorder) totals() (int, int, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.syncs, r.records, r.bytes
}

// TestObserverSeesEveryDurableRecordOnce checks that every appended record
// and byte is reported by exactly one fsync, under both sync policies, so
// the batch size histogram adds up to the append count.
func TestObserverSeesEveryDurableRecordOnce(t *testing.T) {
	for _, policy := range []SyncPolicy{{}, {Interval: time.Hour}} {
		t.Run(policy.String(), func(t *testing.T) {
			rec := &syncRecorder{}
			w, err := Open(Options{Dir: t.TempDir(), Sync: policy, Observer: rec})
			if err != nil {
				t.Fatal(err)
			}
			const appenders, each = 8, 25
			var wg sync.WaitGroup
			for a := range appenders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						if _, err := w.Append(fmt.Appendf(nil, "appender %d record %d", a, i)); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			// Close fsyncs what interval mode left unsynced.
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			st := w.Stats()
			syncs, records, bytes := rec.totals()
			if records != appenders*each || uint64(records) != st.Appends {
				t.Errorf("observer saw %d records; appended %d, Stats.Appends %d", records, appenders*each, st.Appends)
			}
			if uint64(bytes) != st.Bytes {
				t.Errorf("observer saw %d bytes, Stats.Bytes %d", bytes, st.Bytes)
			}
			if uint64(syncs) != st.Syncs {
				t.Errorf("observer saw %d fsyncs, Stats.Syncs %d", syncs, st.Syncs)
			}
		})
	}
}
