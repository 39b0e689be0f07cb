package testnode

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

// BinEnv names an environment variable that, when set, points at a dynkv
// binary to use instead of building one (to test a given build).
const BinEnv = "DYNKV_TEST_BIN"

var build struct {
	once sync.Once
	bin  string
	err  error
}

// Build returns the path of a dynkv binary built from this module's
// ./cmd/dynkv, compiling it once per test process into a temporary
// directory that Main removes at the end. It fails tb when the build fails.
func Build(tb testing.TB) string {
	tb.Helper()
	build.once.Do(func() {
		if bin := os.Getenv(BinEnv); bin != "" {
			build.bin = bin
			return
		}
		build.bin, build.err = buildDynkv()
	})
	if build.err != nil {
		tb.Fatalf("testnode: %v", build.err)
	}
	return build.bin
}

func buildDynkv() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("go env GOMOD: not inside a module (got %q)", gomod)
	}
	// Main removes the directory once every test has run; the tests' own
	// temporary directories are per test and would go too early.
	dir, err := os.MkdirTemp("", "dynkv-testnode-")
	if err != nil {
		return "", fmt.Errorf("creating the build directory: %w", err)
	}
	bin := filepath.Join(dir, "dynkv")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/dynkv")
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Dir(gomod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), cmd.Dir, err, out)
	}
	return bin, nil
}

// Main runs the tests of a suite that uses this package, then removes the
// built binary and checks that no goroutine (a node's Wait, a load
// generator) outlived them. Use it as `os.Exit(testnode.Main(m))` in
// TestMain.
func Main(m *testing.M) int {
	code := m.Run()
	if build.bin != "" && os.Getenv(BinEnv) == "" {
		os.RemoveAll(filepath.Dir(build.bin))
	}
	if code == 0 {
		// goleveldb's memdb pool drainer outlives Close by up to a second
		// by design (Node.DamageStored opens a stopped node's LevelDB).
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain")); err != nil {
			fmt.Fprintf(os.Stderr, "testnode: goroutines outlived the tests: %v\n", err)
			return 1
		}
	}
	return code
}
