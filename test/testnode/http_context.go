package testnode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
)

// DoContext is Do bounded by ctx: chaos clients give each request a
// deadline shorter than HTTPTimeout, because a paused node accepts
// connections and then answers nothing.
func (n *Node) DoContext(ctx context.Context, r Request) (Response, error) {
	req, err := http.NewRequestWithContext(ctx, r.Method, n.URL()+r.Path, bytes.NewReader(r.Body))
	if err != nil {
		return Response{}, fmt.Errorf("node %s: %s %s: %w", n.id, r.Method, r.Path, err)
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	if n.token != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+n.token)
	}
	resp, err := n.http.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("node %s: %s %s: %w", n.id, r.Method, r.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, fmt.Errorf("node %s: %s %s: reading the body of a %d: %w", n.id, r.Method, r.Path, resp.StatusCode, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: body, Context: resp.Header.Get(ContextHeader)}, nil
}

// PutContext is Put bounded by ctx.
func (n *Node) PutContext(ctx context.Context, key string, value []byte, o KV) (Response, error) {
	h := o.header()
	h.Set("Content-Type", "application/octet-stream")
	return n.DoContext(ctx, Request{Method: http.MethodPut, Path: o.path(key), Body: value, Header: h})
}

// GetContext is Get bounded by ctx.
func (n *Node) GetContext(ctx context.Context, key string, o KV) (Response, error) {
	return n.DoContext(ctx, Request{Method: http.MethodGet, Path: o.path(key), Header: o.header()})
}

// DeleteContext is Delete bounded by ctx.
func (n *Node) DeleteContext(ctx context.Context, key string, o KV) (Response, error) {
	return n.DoContext(ctx, Request{Method: http.MethodDelete, Path: o.path(key), Header: o.header()})
}
