package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// APIError is an error answer of the server.
type APIError struct {
	Status  int    // HTTP status
	Message string // the server's "error" field, or the start of the body
	Needed  int    // 503: replicas needed for the quorum
	Acked   int    // 503: replicas that answered
	Addr    string // node that answered
	// RetryAfter is the server's Retry-After on 429 and 503, 0 if none.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Status == http.StatusServiceUnavailable && e.Needed > 0 {
		return fmt.Sprintf("%s: %d %s (needed %d, acked %d)", e.Addr, e.Status, msg, e.Needed, e.Acked)
	}
	return fmt.Sprintf("%s: %d %s", e.Addr, e.Status, msg)
}

// retryable says whether another attempt, maybe on another node, can help.
func (e *APIError) retryable() bool {
	return e.Status == http.StatusServiceUnavailable || e.Status == http.StatusTooManyRequests
}

// ConnError is a failure to reach a node or to get its answer.
type ConnError struct {
	Addr string
	Err  error
}

func (e *ConnError) Error() string { return fmt.Sprintf("client: %s: %v", e.Addr, e.Err) }
func (e *ConnError) Unwrap() error { return e.Err }

// apiError reads the JSON error body of resp; it does not close it.
func apiError(resp *http.Response) *APIError {
	e := &APIError{Status: resp.StatusCode}
	if resp.Request != nil && resp.Request.URL != nil {
		e.Addr = resp.Request.URL.Scheme + "://" + resp.Request.URL.Host
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs > 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	body, _ := readBody(resp.Body, maxErrorBody)
	var j struct {
		Error  string `json:"error"`
		Needed int    `json:"needed"`
		Acked  int    `json:"acked"`
	}
	if err := json.Unmarshal(body, &j); err == nil && j.Error != "" {
		e.Message, e.Needed, e.Acked = j.Error, j.Needed, j.Acked
		return e
	}
	msg := strings.TrimSpace(string(body))
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 200 {
		msg = msg[:200]
	}
	e.Message = msg
	return e
}

func readBody(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("read body: longer than %d bytes", limit)
	}
	return b, nil
}

// IsRetryable reports whether err is a failure that a later attempt may
// not repeat: a quorum miss, load shedding or a connection error.
func IsRetryable(err error) bool {
	var a *APIError
	if errors.As(err, &a) {
		return a.retryable()
	}
	var c *ConnError
	if errors.As(err, &c) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}
