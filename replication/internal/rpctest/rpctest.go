package rpctest

import (
	"net"
	"net/http"
	"testing"

	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/replication/rpc/transport"
)

// Serve serves srv as node does, on a fresh local port: ServeCall behind
// a transport.Server at transport.DefaultPath and the HTTP/2 RPC under
// rpc.PathPrefix. It returns the address; the server stops with the test.
func Serve(t testing.TB, srv *rpc.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ts := &transport.Server{Handler: srv.ServeCall, Authorize: srv.Authorize}
	mux := http.NewServeMux()
	mux.Handle(rpc.PathPrefix, srv.Handler())
	mux.Handle(transport.DefaultPath, ts)
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	hs := &http.Server{Handler: mux, Protocols: &protocols}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = hs.Close()
		<-done
		_ = ts.Close()
	})
	return ln.Addr().String()
}

// NewClient returns an RPC client closed when the test ends.
func NewClient(t testing.TB, cfg rpc.ClientConfig) *rpc.Client {
	t.Helper()
	c := rpc.NewClient(cfg)
	t.Cleanup(c.Close)
	return c
}
