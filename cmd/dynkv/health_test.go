package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthExitsZeroOnlyWhenTheProbedPathAnswers200(t *testing.T) {
	var sawToken string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawToken = r.Header.Get("Authorization")
		switch r.URL.Path {
		case "/health":
			w.Write([]byte("ok"))
		case "/ready":
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error":"joining"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()

	if code, out, errOut := cli(t, srv.URL, "", "health", "--auth-token", "a,b"); code != exitOK || !strings.Contains(out, "/health: 200") {
		t.Errorf("health on a live node: exit %d stdout %q stderr %q, want 0 and the 200", code, out, errOut)
	}
	if sawToken != "Bearer a" {
		t.Errorf("health sent Authorization %q, want the first token", sawToken)
	}
	if code, _, errOut := cli(t, srv.URL, "", "health", "--ready"); code != exitFailure || !strings.Contains(errOut, "503") {
		t.Errorf("health --ready on a joining node: exit %d stderr %q, want 3 naming the 503", code, errOut)
	}
	srv.Close()
	if code, _, errOut := cli(t, srv.URL, "", "health", "--timeout", "2s"); code != exitFailure || errOut == "" {
		t.Errorf("health on a stopped node: exit %d stderr %q, want 3 with a message", code, errOut)
	}
	if code, _, _ := cli(t, srv.URL, "", "health", "--output", "yaml"); code != exitUsage {
		t.Errorf("health --output yaml: exit %d, want 2", code)
	}
}
