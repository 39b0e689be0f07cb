package cluster

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

func TestMain(m *testing.M) { os.Exit(testnode.Main(m)) }

// seeded returns a random source whose seed the test prints, taken from
// DYNKV_TEST_SEED when set so a failure can be replayed.
func seeded(t *testing.T) *rand.Rand {
	t.Helper()
	seed := testnode.Seed(t, "DYNKV_TEST_SEED")
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// mustPut writes and requires 204; it returns the X-Context.
func mustPut(t *testing.T, nd *testnode.Node, key string, value []byte, o testnode.KV) string {
	t.Helper()
	r, err := nd.Put(key, value, o)
	if err != nil {
		t.Fatalf("PUT %q=%q via %s: %v (want 204)", key, value, nd.ID(), err)
	}
	if r.Status != http.StatusNoContent {
		t.Fatalf("PUT %q=%q via %s: got %s, want 204", key, value, nd.ID(), r)
	}
	if r.Context == "" {
		t.Fatalf("PUT %q via %s: 204 without X-Context", key, nd.ID())
	}
	return r.Context
}

// readValues reads key and returns its values sorted (one for 200, the
// siblings for 300, none for 404) and the response.
func readValues(nd *testnode.Node, key string, o testnode.KV) ([]string, testnode.Response, error) {
	r, err := nd.Get(key, o)
	if err != nil {
		return nil, r, err
	}
	switch r.Status {
	case http.StatusOK, http.StatusMultipleChoices, http.StatusNotFound:
	default:
		return nil, r, fmt.Errorf("GET %q via %s: got %s, want 200, 300 or 404", key, nd.ID(), r)
	}
	vals, err := r.Values()
	if err != nil {
		return nil, r, fmt.Errorf("GET %q via %s: %w", key, nd.ID(), err)
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = string(v)
	}
	sort.Strings(out)
	return out, r, nil
}

// checkExact returns an error unless key reads as exactly one value, want,
// with status 200.
func checkExact(nd *testnode.Node, key string, want []byte, o testnode.KV) error {
	r, err := nd.Get(key, o)
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK || !bytes.Equal(r.Body, want) {
		return fmt.Errorf("GET %q via %s: got %s, want 200 %q", key, nd.ID(), r, want)
	}
	return nil
}

// write is one acknowledged write.
type write struct {
	key   string
	value []byte
}

// replicaCounts counts, for every write, the nodes whose local copy holds
// exactly its value (and nothing else live), and returns a histogram of
// counts and, for up to five keys whose count is not want, what each node
// holds.
func replicaCounts(nodes []*testnode.Node, writes []write, want int) (hist map[int]int, bad []string, err error) {
	hist = map[int]int{}
	for _, w := range writes {
		count := 0
		var held []string
		for _, nd := range nodes {
			l, err := nd.LocalGet(0, w.key)
			if err != nil {
				return nil, nil, err
			}
			vals := l.Values()
			if len(vals) == 1 && bytes.Equal(vals[0], w.value) {
				count++
				held = append(held, nd.ID()+": the value")
				continue
			}
			held = append(held, fmt.Sprintf("%s: found=%t, %d siblings %s", nd.ID(), l.Found, len(l.Siblings), shortValues(l)))
		}
		hist[count]++
		if count != want && len(bad) < 5 {
			bad = append(bad, fmt.Sprintf("%q {%s}", w.key, strings.Join(held, "; ")))
		}
	}
	return hist, bad, nil
}

// shortValues describes a local copy's siblings compactly.
func shortValues(l testnode.LocalSet) string {
	var parts []string
	for _, s := range l.Siblings {
		v := string(s.Value)
		if len(v) > 24 {
			v = v[:24] + "..."
		}
		if s.Tombstone {
			v = "(tombstone)"
		}
		parts = append(parts, fmt.Sprintf("%s:%d=%q", s.Actor, s.Counter, v))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// waitReplicas polls replicaCounts until every write has want copies among
// nodes or timeout passes; it returns the last histogram, the time taken
// and an error describing the shortfall.
func waitReplicas(nodes []*testnode.Node, writes []write, want int, timeout time.Duration) (map[int]int, time.Duration, error) {
	start := time.Now()
	for {
		hist, bad, err := replicaCounts(nodes, writes, want)
		if err == nil && len(bad) == 0 {
			return hist, time.Since(start), nil
		}
		if time.Since(start) > timeout {
			if err == nil {
				err = fmt.Errorf("after %v: replica count histogram %s, want every key on %d of %s; e.g. %s",
					timeout, fmtHist(hist), want, ids(nodes), strings.Join(bad, ", "))
			}
			return hist, time.Since(start), err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func fmtHist(h map[int]int) string {
	keys := make([]int, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d copies: %d keys", k, h[k])
	}
	b.WriteByte('}')
	return b.String()
}

func ids(nodes []*testnode.Node) []string {
	out := make([]string, len(nodes))
	for i, nd := range nodes {
		out[i] = nd.ID()
	}
	return out
}
