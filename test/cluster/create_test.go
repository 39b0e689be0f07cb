package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dynkv/dynkv/client"
	"github.com/dynkv/dynkv/test/testnode"
)

// elements is a set of newline-separated elements stored as one value.
func elements(v []byte) []string {
	var out []string
	for _, e := range strings.Split(string(v), "\n") {
		if e != "" {
			out = append(out, e)
		}
	}
	return out
}

func encodeElements(es []string) []byte {
	slices.Sort(es)
	return []byte(strings.Join(slices.Compact(es), "\n"))
}

// unionResolver merges siblings the way a set workload does: every element
// of every sibling.
func unionResolver(sibs []client.Sibling) []byte {
	var all []string
	for _, s := range sibs {
		all = append(all, elements(s.Value)...)
	}
	return encodeElements(all)
}

// Issue 10: a client that reads "absent" has seen nothing, and its write
// must supersede nothing (SPEC section 5). Several clients, each through a
// different coordinator, read a fresh key's 404 together, then each adds
// an element with the 404's context (the Go client's Update), and keep
// adding with read-modify-write. Every acknowledged element must be in the
// final read: before the 404 carried a context, the first element of each
// racing creator could vanish under another's blind write.
func TestConcurrentCreatesThroughDifferentCoordinatorsKeepEveryElement(t *testing.T) {
	c := testnode.Start(t, 3, testnode.Options{})
	const (
		keys    = 6
		writers = 6
		adds    = 4 // per writer per key, the first one a create
	)
	clients := make([]*client.Client, writers)
	for i := range clients {
		cl, err := client.New([]string{c.Nodes[i%len(c.Nodes)].URL()}, client.WithResolver(unionResolver), client.WithRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = cl
	}
	var (
		mu       sync.Mutex
		acked    = map[string][]string{}
		failures int
	)
	for k := range keys {
		key := fmt.Sprintf("fresh-%d-%d", k, time.Now().UnixNano())
		// Every writer reads the 404 before any writes: the worst case.
		var read sync.WaitGroup
		read.Add(writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for a := range adds {
					elem := fmt.Sprintf("w%d-a%d", w, a)
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := clients[w].Update(ctx, key, func(cur []byte, found bool) ([]byte, error) {
						if a == 0 {
							if found {
								return nil, fmt.Errorf("writer %d: key %s exists before any write", w, key)
							}
							read.Done()
							read.Wait()
						}
						return encodeElements(append(elements(cur), elem)), nil
					}, client.PutOptions{})
					cancel()
					mu.Lock()
					if err == nil {
						acked[key] = append(acked[key], elem)
					} else {
						failures++
						t.Logf("writer %d add %s to %s: %v (not acknowledged)", w, elem, key, err)
					}
					mu.Unlock()
					if err != nil && a == 0 && !isIndeterminate(err) {
						t.Errorf("writer %d: the create of %s failed outright: %v", w, key, err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	if t.Failed() {
		return
	}
	total, lost := 0, 0
	for key, want := range acked {
		res, err := clients[0].Get(context.Background(), key, client.GetOptions{R: 3})
		if err != nil {
			t.Fatalf("final read of %s at R=3: %v", key, err)
		}
		have := map[string]bool{}
		for _, s := range res.Values {
			for _, e := range elements(s.Value) {
				have[e] = true
			}
		}
		for _, e := range want {
			total++
			if !have[e] {
				lost++
				t.Errorf("key %s: acknowledged element %s is missing from the final read (%d siblings)", key, e, len(res.Values))
			}
		}
	}
	t.Logf("concurrent creates: %d keys, %d writers through 3 coordinators, %d elements acknowledged, %d not acknowledged, %d lost",
		keys, writers, total, failures, lost)
	if total < keys*writers {
		t.Fatalf("only %d elements acknowledged; want at least the %d creates", total, keys*writers)
	}
}

// isIndeterminate: a 503 (quorum) is an honest failure a busy CI machine
// can produce; anything else in a healthy cluster is a bug.
func isIndeterminate(err error) bool {
	var apiErr *client.APIError
	return errors.As(err, &apiErr) && apiErr.Status == 503
}
