package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

// TestFullDiskGives507WhileReadsWork is SPEC section 3's 507: a node whose
// disk fills refuses writes with 507 but keeps serving reads and every
// acknowledged write, and takes writes again once space is back. It runs
// twice: once where the --min-free-bytes threshold trips first, and once with
// the threshold at 1 byte, so that the WAL and LevelDB meet a real ENOSPC.
func TestFullDiskGives507WhileReadsWork(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("e2e: TestFullDiskGives507WhileReadsWork mounts a tmpfs as the data directory and needs root; run the suite as root (CI does) to include it")
	}
	t.Run("min-free-bytes=16MiB", func(t *testing.T) { fullDisk(t, 16<<20) })
	t.Run("ENOSPC,min-free-bytes=1", func(t *testing.T) { fullDisk(t, 1) })
}

func fullDisk(t *testing.T, minFreeBytes uint64) {
	const (
		valueSize = 64 << 10
		maxWrites = 2000 // 125 MiB: far beyond the 48 MiB tmpfs, so a 507 must come first
	)
	dir := t.TempDir()
	mountTmpfs(t, dir, "48m")
	n := startNode(t, testnode.NodeOptions{DataDir: dir, Args: []string{fmt.Sprintf("--min-free-bytes=%d", minFreeBytes), "--segment-size=4194304"}})
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 3))
	value := func() []byte {
		v := make([]byte, valueSize)
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		return v
	}

	acked := map[string][]byte{}
	var full *response
	for i := range maxWrites {
		k := fmt.Sprintf("full/%05d", i)
		v := value()
		r := n.must(t, request{method: http.MethodPut, path: kvPath(-1, k), body: v})
		if r.Status == http.StatusNoContent {
			acked[k] = v
			continue
		}
		if r.Status != http.StatusInsufficientStorage {
			t.Fatalf("PUT %s (%d bytes) after %d acknowledged: got %s, want 204 or 507", k, valueSize, len(acked), r)
		}
		full = r
		break
	}
	if full == nil {
		t.Fatalf("%d PUTs of %d bytes into a 48 MiB tmpfs all got 204, want a 507 before that", maxWrites, valueSize)
	}
	t.Logf("507 after %d acknowledged %d-byte writes: %s", len(acked), valueSize, full)
	expectJSONError(t, "PUT on a full disk", full, http.StatusInsufficientStorage)
	r := n.must(t, request{method: http.MethodPut, path: kvPath(-1, "full/again"), body: value()})
	expectJSONError(t, "second PUT on a full disk", r, http.StatusInsufficientStorage)

	n.expectHealthy(t)
	for k, v := range acked {
		n.expectValue(t, -1, k, v)
	}

	if out, err := exec.Command("mount", "-o", "remount,size=256m", dir).CombinedOutput(); err != nil {
		t.Fatalf("growing the tmpfs at %s to 256m: %v: %s", dir, err, out)
	}
	// The node may cache its free-space reading for a moment; wait for a
	// 204, bounded.
	k, v := "full/after-grow", value()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := n.must(t, request{method: http.MethodPut, path: kvPath(-1, k), body: v})
		if r.Status == http.StatusNoContent {
			acked[k] = v
			break
		}
		if r.Status != http.StatusInsufficientStorage || time.Now().After(deadline) {
			t.Fatalf("PUT %s after growing the disk to 256 MiB: got %s, want 204 (within 15s)", k, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i := range 20 {
		k := fmt.Sprintf("full/grown/%02d", i)
		v := value()
		n.put(t, -1, k, v, "")
		acked[k] = v
	}

	n.Stop()
	n.Restart()
	n.expectHealthy(t)
	for k, v := range acked {
		n.expectValue(t, -1, k, v)
	}
}

// mountTmpfs mounts a tmpfs of the given size on dir until the test ends.
// It is registered before the node starts, so cleanup kills the node first.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("e2e: cannot mount a tmpfs on %s (%v: %s); this environment does not allow mounts", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting the tmpfs at %s: %v: %s", dir, err, out)
		}
	})
}
