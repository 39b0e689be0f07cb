package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// runHealth probes a node's /health (or /ready) and exits 0 when it
// answers 200. Images built FROM scratch have no shell or curl, so
// container health checks (docker-compose, Kubernetes exec probes) run the
// binary itself.
func runHealth(args []string, env func(string) string, stdout, stderr io.Writer) int {
	var cf clientFlags
	var ready bool
	c := newCommand("health", "health [flags]", `Asks the node at --addr whether it is alive (GET /health) or, with --ready,
whether it serves requests (GET /ready: WAL recovered and part of a ring).
Exits 0 when it is, 3 when it is not or cannot be reached.`)
	cf.register(c)
	c.fs.BoolVar(&ready, "ready", false, "check readiness (/ready) instead of liveness (/health)")
	_, err := c.parse(args, env, stdout)
	if err == nil {
		err = cf.check()
	}
	if err != nil {
		return report(stderr, err)
	}
	hc, err := cf.httpClient(1)
	if err != nil {
		return report(stderr, err)
	}
	defer hc.CloseIdleConnections()
	path := "/health"
	if ready {
		path = "/ready"
	}
	base, _, _ := strings.Cut(cf.addr, ",")
	url := strings.TrimRight(strings.TrimSpace(base), "/") + path
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return report(stderr, usagef("--addr %q: %v", cf.addr, err))
	}
	if token, _, _ := strings.Cut(cf.token, ","); token != "" {
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(token))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return report(stderr, fmt.Errorf("health: %w", err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	ok := resp.StatusCode == http.StatusOK
	if cf.output == "json" {
		writeJSON(stdout, map[string]any{"url": url, "status": resp.StatusCode, "ok": ok})
	} else {
		fmt.Fprintf(stdout, "%s: %d %s\n", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if !ok {
		fmt.Fprintf(stderr, "dynkv: health: %s answered %d\n", url, resp.StatusCode)
		return exitFailure
	}
	return exitOK
}
