package client

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzAPIError: the client reads any error response a server (or whatever
// answers at its address) sends without panicking, keeps the status,
// takes Retry-After only as a positive number of seconds, takes the
// "error" field of a JSON body, and otherwise keeps at most one line of
// 200 bytes of the body as the message.
func FuzzAPIError(f *testing.F) {
	f.Add(503, "1", []byte(`{"error":"quorum not reached","needed":2,"acked":1}`))
	f.Add(429, "0", []byte(`{"error":"overloaded"}`))
	f.Add(400, "", []byte(`{"error":""}`))
	f.Add(404, "-5", []byte("404 page not found\n"))
	f.Add(502, "9999999999999999999", []byte("<html>\n<body>bad gateway</body></html>"))
	f.Add(500, "1.5", []byte(strings.Repeat("x", 300)))
	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		resp := &http.Response{
			StatusCode: status,
			Header:     http.Header{},
			Body:       io.NopCloser(bytes.NewReader(body)),
		}
		if retryAfter != "" {
			resp.Header.Set("Retry-After", retryAfter)
		}
		e := apiError(resp)
		_ = e.Error()
		if e.Status != status {
			t.Fatalf("status %d read as %d", status, e.Status)
		}
		secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		want := time.Duration(0)
		if err == nil && secs > 0 {
			want = time.Duration(secs) * time.Second
		}
		if e.RetryAfter != want {
			t.Fatalf("Retry-After %q read as %v, want %v", retryAfter, e.RetryAfter, want)
		}
		var j struct {
			Error  string `json:"error"`
			Needed int    `json:"needed"`
			Acked  int    `json:"acked"`
		}
		if len(body) <= maxErrorBody && json.Unmarshal(body, &j) == nil && j.Error != "" {
			if e.Message != j.Error || e.Needed != j.Needed || e.Acked != j.Acked {
				t.Fatalf("JSON error %+v read as %+v", j, e)
			}
			return
		}
		if len(e.Message) > 200 || strings.Contains(e.Message, "\n") {
			t.Fatalf("message of %d bytes, or of several lines: %q", len(e.Message), e.Message)
		}
	})
}
