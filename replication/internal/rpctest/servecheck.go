package rpctest

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dynkv/dynkv/replication/rpc"
	"github.com/dynkv/dynkv/replication/rpc/transport"
)

// CallFrames is what CheckServe knows of one of a room's calls.
type CallFrames struct {
	Call rpc.Call
	// Request and Response run the decoders of the call's frames.
	Request, Response func([]byte) error
	// RefusesDecodable: the handler may refuse a request its decoder
	// accepts as a bad request (a partition the node does not have).
	RefusesDecodable bool
	// SameResponse: both ways in answer the same bytes (false for a call
	// that writes, which a second delivery may answer differently).
	SameResponse bool
}

// CheckServe posts body to the call both ways in, the HTTP/2 RPC
// (srv.Handler) and the transport (srv.ServeCall), as FuzzServeRPC and
// FuzzServeCall in replication/rpc do for the core calls. Whatever the
// body, the server must answer with an RPC frame: on success the call's
// own response frame, otherwise an error frame whose code gives the HTTP
// status (on the transport: a *transport.Error of that code); a frame the
// decoder refuses is a bad request, never an internal error; and both ways
// in give the same answer.
func CheckServe(t *testing.T, srv *rpc.Server, cf CallFrames, body []byte) {
	t.Helper()
	call := cf.Call.String()
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, rpc.PathPrefix+call, bytes.NewReader(body)))
	out := rec.Body.Bytes()
	if ct := rec.Header().Get("Content-Type"); ct != rpc.ContentType {
		t.Fatalf("%s: Content-Type %q, want %q", call, ct, rpc.ContentType)
	}
	var httpCode rpc.ErrorCode
	if rec.Code != http.StatusOK {
		code, msg, err := rpc.DecodeErrorFrame(out)
		if err != nil {
			t.Fatalf("%s: status %d with a body that is no error frame (%v): %x", call, rec.Code, err, out)
		}
		if code.Status() != rec.Code {
			t.Fatalf("%s: status %d for code %s, which maps to %d", call, rec.Code, code, code.Status())
		}
		if code == rpc.CodeInternal {
			t.Fatalf("%s: internal error for a %d-byte frame: %s", call, len(body), msg)
		}
		if cf.Request(body) == nil && code == rpc.CodeBadRequest && !cf.RefusesDecodable {
			t.Fatalf("%s: a frame its decoder accepts was refused as a bad request: %s", call, msg)
		}
		httpCode = code
	} else {
		if err := cf.Request(body); err != nil {
			t.Fatalf("%s: answered 200 to a frame its decoder refuses (%v)", call, err)
		}
		if err := cf.Response(out); err != nil {
			t.Fatalf("%s: 200 with a body that is not its response frame: %v", call, err)
		}
	}

	resp, err := srv.ServeCall(context.Background(), byte(cf.Call), bytes.Clone(body))
	var code rpc.ErrorCode
	if err != nil {
		var te *transport.Error
		if !errors.As(err, &te) {
			t.Fatalf("%s: error %v is no *transport.Error", call, err)
		}
		c, _, derr := rpc.DecodeErrorFrame(te.Detail)
		if derr != nil || byte(c) != te.Code {
			t.Fatalf("%s: transport error code %d with detail %x: %s, %v; want the error frame of that code", call, te.Code, te.Detail, c, derr)
		}
		code = c
	}
	if code == rpc.CodeInternal {
		t.Fatalf("%s: internal error for a %d-byte frame: %v", call, len(body), err)
	}
	if err == nil {
		if derr := cf.Response(resp); derr != nil {
			t.Fatalf("%s: a response that is not its response frame: %v", call, derr)
		}
	}
	if rec.Code == http.StatusOK {
		if err != nil {
			t.Fatalf("%s: the transport answered %v, HTTP/2 200", call, err)
		}
		if cf.SameResponse && !bytes.Equal(out, resp) {
			t.Fatalf("%s: the transport answered %x, HTTP/2 %x", call, resp, out)
		}
		return
	}
	if httpCode != code {
		t.Fatalf("%s: HTTP/2 answered %d (%s), the transport %v", call, rec.Code, httpCode, err)
	}
}
