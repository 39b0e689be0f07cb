package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/dynkv/dynkv/test/testnode"
)

// runCLI runs the dynkv binary as a client with a clean environment plus env
// and returns its exit status and output.
func runCLI(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return testnode.RunCLI(t, env, "", args...)
}

// TestCLIExitStatusesFollowSpec is SPEC section 2: client commands exit 0 on
// success, 1 on a not-found read, 2 on usage errors and 3 on server errors,
// with a one-line message on stderr.
func TestCLIExitStatusesFollowSpec(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{})
	addr := "--addr=" + n.URL()
	expect := func(want int, wantOut string, env []string, args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, env, args...)
		if code != want {
			t.Errorf("dynkv %s: exit %d, want %d; stdout %q, stderr %q", strings.Join(args, " "), code, want, out, errOut)
		}
		if want != 0 && strings.Count(strings.TrimRight(errOut, "\n"), "\n") != 0 {
			t.Errorf("dynkv %s: stderr %q, want one line", strings.Join(args, " "), errOut)
		}
		if wantOut != "" && strings.TrimRight(out, "\n") != wantOut {
			t.Errorf("dynkv %s: stdout %q, want %q", strings.Join(args, " "), out, wantOut)
		}
		return out
	}

	if out := expect(0, "", nil, "put", "cli/k", "hello", addr); strings.TrimSpace(out) == "" {
		t.Errorf("dynkv put: printed nothing, want the new context")
	}
	expect(0, "hello", nil, "get", "cli/k", addr)
	n.expectValue(t, -1, "cli/k", []byte("hello")) // the CLI and HTTP agree
	expect(0, "hello", []string{"DYNKV_ADDR=" + n.URL()}, "get", "cli/k")
	expect(1, "", nil, "get", "cli/missing", addr)
	expect(0, "", nil, "put", "cli/db", "in three", "--db=3", addr)
	n.expectValue(t, 3, "cli/db", []byte("in three"))
	expect(0, "", nil, "delete", "cli/k", addr)
	expect(1, "", nil, "get", "cli/k", addr)
	expect(0, "", nil, "put", "cli/ttl", "brief", "--ttl=30s", addr)
	expect(0, "brief", nil, "get", "cli/ttl", addr)

	expect(2, "", nil, "put", "only-a-key", addr)
	expect(2, "", nil, "no-such-command")
	expect(2, "", nil, "get", "cli/k", "--no-such-flag", addr)

	// A value over the server's limit is the caller's to fix: cmd/dynkv
	// counts a 400 or 413 from the server as a usage error.
	if code, out, errOut := testnode.RunCLI(t, nil, strings.Repeat("v", 2<<20), "put", "cli/big", "-", addr); code != 2 {
		t.Errorf("dynkv put cli/big - (2 MiB on stdin, limit 1 MiB): exit %d, want 2; stdout %q stderr %q", code, out, errOut)
	}
	n.expectAbsent(t, -1, "cli/big")

	// Nothing listening: a connection error is 3.
	free, err := testnode.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	closed := "--addr=http://" + free
	expect(3, "", nil, "get", "cli/k", closed, "--timeout=2s")
}

// TestServerFlagsAlsoComeFromEnvironment is SPEC section 2: every server
// flag is also read from DYNKV_<FLAG>, and a flag beats the environment.
func TestServerFlagsAlsoComeFromEnvironment(t *testing.T) {
	t.Parallel()
	t.Run("EnvironmentApplies", func(t *testing.T) {
		n := startNode(t, testnode.NodeOptions{Env: []string{"DYNKV_MAX_VALUE_BYTES=100"}})
		r := n.must(t, request{method: http.MethodPut, path: kvPath(-1, "env"), body: make([]byte, 101)})
		expectJSONError(t, "PUT 101 bytes with DYNKV_MAX_VALUE_BYTES=100", r, http.StatusRequestEntityTooLarge)
		n.put(t, -1, "env", make([]byte, 100), "")
	})
	t.Run("FlagBeatsEnvironment", func(t *testing.T) {
		n := startNode(t, testnode.NodeOptions{Env: []string{"DYNKV_MAX_VALUE_BYTES=100"}, Args: []string{"--max-value-bytes=200"}})
		n.put(t, -1, "env", make([]byte, 150), "")
		r := n.must(t, request{method: http.MethodPut, path: kvPath(-1, "env"), body: make([]byte, 201)})
		expectJSONError(t, "PUT 201 bytes with --max-value-bytes=200", r, http.StatusRequestEntityTooLarge)
	})
}

// TestAuthTokenGuardsTheAPI: with --auth-token, requests need the bearer
// token (401 otherwise), /health stays open for probes, and the CLI passes
// the token from DYNKV_AUTH_TOKEN.
func TestAuthTokenGuardsTheAPI(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{Args: []string{"--auth-token=s3cret,other"}, Token: "s3cret"})
	hr, _ := http.NewRequest(http.MethodPut, n.URL()+kvPath(-1, "guarded"), strings.NewReader("v"))
	resp, err := n.HTTPClient().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("PUT without a token: got %d, want 401", resp.StatusCode)
	}
	for _, tok := range []string{"s3cret", "other"} {
		hr, _ = http.NewRequest(http.MethodPut, n.URL()+kvPath(-1, "guarded"), strings.NewReader(tok))
		hr.Header.Set("Authorization", "Bearer "+tok)
		resp, err = n.HTTPClient().Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Errorf("PUT with token %q: got %d, want 204", tok, resp.StatusCode)
		}
	}
	n.expectHealthy(t)

	code, out, errOut := runCLI(t, []string{"DYNKV_AUTH_TOKEN=s3cret"}, "get", "guarded", "--addr="+n.URL())
	if code != 0 || strings.TrimRight(out, "\n") != "other" {
		t.Errorf("dynkv get with DYNKV_AUTH_TOKEN: exit %d stdout %q stderr %q, want 0 and \"other\"", code, out, errOut)
	}
	code, _, errOut = runCLI(t, nil, "get", "guarded", "--addr="+n.URL())
	if code != 3 {
		t.Errorf("dynkv get without a token: exit %d (stderr %q), want 3", code, errOut)
	}
}

// TestBenchRunsCleanAgainstANode: `dynkv bench` drives a real node with no
// errors and prints its summary.
func TestBenchRunsCleanAgainstANode(t *testing.T) {
	t.Parallel()
	n := startNode(t, testnode.NodeOptions{})
	code, out, errOut := runCLI(t, nil, "bench", "--addr="+n.URL(), "--requests=500", "--connections=8", "--keys=100", "--progress=false", "--seed=7")
	if code != 0 {
		t.Fatalf("dynkv bench: exit %d, want 0; stdout %q stderr %q", code, out, errOut)
	}
	if !strings.Contains(out, "errors      0") && !strings.Contains(out, "errors 0") {
		t.Errorf("dynkv bench summary: want 0 errors, got:\n%s", out)
	}
	t.Logf("dynkv bench summary:\n%s", out)
}
