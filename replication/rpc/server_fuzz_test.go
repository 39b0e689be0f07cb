package rpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/iotest"

	"github.com/dynkv/dynkv/replication/rpc/transport"
)

// rpcCalls are the calls Server.serve routes itself, in the order the fuzz
// targets below pick them by a byte. The rooms' calls (hint, aae-*) have
// their own fuzz targets in replication/hints and replication/antientropy,
// over a server they registered on; here, unregistered, they answer
// unavailable.
var rpcCalls = []string{CallGet.String(), CallMerge.String(), CallMergeBatch.String(), CallCoordinate.String(), CallHint.String(), CallAAETree.String(), CallAAEKeys.String(), CallAAERoots.String(), CallCover.String()}

// roomCall reports whether call is served by a room, not by the Server.
func roomCall(call string) bool {
	switch call {
	case CallHint.String(), CallAAETree.String(), CallAAEKeys.String(), CallAAERoots.String():
		return true
	}
	return false
}

// FuzzServeRPC posts arbitrary frames to every node-to-node call of a
// server over a real store and hash trees, as a peer (or a stranger that
// got past authentication) would. Whatever the body, the server must not
// panic and must answer with an RPC frame: on 200 the call's own response
// frame, otherwise an error frame whose code gives that status; a frame the
// call's Decoder refuses is a bad request, never an internal error.
func FuzzServeRPC(f *testing.F) {
	batch, _ := encodeMergeBatchRequest([]Item{{DB: 1, Key: []byte("a"), Set: sampleSet("v")}, {DB: 2, Key: []byte("b")}})
	seeds := map[string][][]byte{
		CallGet.String():        {encodeGetRequest(getRequest{DB: 1, Key: []byte("a")}), encodeGetRequest(getRequest{DB: 200, Key: []byte("a")})},
		CallMerge.String():      {encodeMergeRequest(mergeRequest{DB: 1, Key: []byte("a"), Set: sampleSet("v")})},
		CallMergeBatch.String(): {batch},
		CallCoordinate.String(): {encodeCoordinateRequest(sampleWrite())},
		CallCover.String():      {encodeCoverRequest(mergeRequest{DB: 1, Key: []byte("a"), Set: sampleSet("v")})},
	}
	for i, call := range rpcCalls {
		for _, b := range seeds[call] {
			f.Add(byte(i), b)
		}
		f.Add(byte(i), []byte{})
	}

	s := openStore(f)
	srv := &Server{
		Store: s,
		Coordinate: func(_ context.Context, w WriteRequest) (WriteResult, error) {
			if w.W > 3 {
				return WriteResult{}, &QuorumError{Needed: w.W, Acked: 3}
			}
			return WriteResult{Context: w.Context}, nil
		},
	}
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, which byte, body []byte) {
		call := rpcCalls[int(which)%len(rpcCalls)]
		req := httptest.NewRequest(http.MethodPost, PathPrefix+call, bytes.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		out := rec.Body.Bytes()
		if ct := rec.Header().Get("Content-Type"); ct != contentType {
			t.Fatalf("%s: Content-Type %q, want %q", call, ct, contentType)
		}
		if rec.Code != http.StatusOK {
			e, err := decodeError(out)
			if err != nil {
				t.Fatalf("%s: status %d with a body that is no error frame (%v): %x", call, rec.Code, err, out)
			}
			if e.Code.status() != rec.Code {
				t.Fatalf("%s: status %d for code %s, which maps to %d", call, rec.Code, e.Code, e.Code.status())
			}
			if e.Code == CodeInternal {
				t.Fatalf("%s: internal error for a %d-byte frame: %s", call, len(body), e.Message)
			}
			if roomCall(call) {
				if e.Code != CodeUnavailable {
					t.Fatalf("%s, served by no room here: %s, want unavailable", call, e.Code)
				}
				return
			}
			if requestDecodes(call, body) == nil && e.Code == CodeBadRequest {
				t.Fatalf("%s: a frame its Decoder accepts was refused as a bad request: %s", call, e.Message)
			}
			return
		}
		if roomCall(call) {
			t.Fatalf("%s, served by no room here: answered 200", call)
		}
		if err := requestDecodes(call, body); err != nil {
			t.Fatalf("%s: answered 200 to a frame its Decoder refuses (%v)", call, err)
		}
		if err := responseDecodes(call, out); err != nil {
			t.Fatalf("%s: 200 with a body that is not its response frame: %v", call, err)
		}
	})
}

// FuzzServeCall sends arbitrary call bytes and frames to ServeCall, the
// transport's way in, over the same kind of server as FuzzServeRPC. It
// must not panic; a failure is a *transport.Error carrying an error frame
// of the same code; an unknown call byte is a bad request; and every frame
// gets the answer the HTTP/2 RPC gives it (the same response, or an error
// of the same code): one set of handlers serves both.
func FuzzServeCall(f *testing.F) {
	batch, _ := encodeMergeBatchRequest([]Item{{DB: 1, Key: []byte("a"), Set: sampleSet("v")}})
	for id := Call(1); id <= maxCall; id++ {
		f.Add(byte(id), []byte{})
	}
	f.Add(byte(CallGet), encodeGetRequest(getRequest{DB: 1, Key: []byte("a")}))
	f.Add(byte(CallMerge), encodeMergeRequest(mergeRequest{DB: 1, Key: []byte("a"), Set: sampleSet("v")}))
	f.Add(byte(CallMergeBatch), batch)
	f.Add(byte(CallCoordinate), encodeCoordinateRequest(sampleWrite()))
	f.Add(byte(CallCover), encodeCoverRequest(mergeRequest{DB: 1, Key: []byte("a"), Set: sampleSet("v")}))
	f.Add(byte(0), []byte{FrameVersion})
	f.Add(byte(maxCall+1), []byte{FrameVersion})

	s := openStore(f)
	srv := &Server{
		Store: s,
		Coordinate: func(_ context.Context, w WriteRequest) (WriteResult, error) {
			if w.W > 3 {
				return WriteResult{}, &QuorumError{Needed: w.W, Acked: 3}
			}
			return WriteResult{Context: w.Context}, nil
		},
	}
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, call byte, body []byte) {
		resp, err := srv.ServeCall(context.Background(), call, bytes.Clone(body))
		id := Call(call)
		var code ErrorCode
		if err != nil {
			var te *transport.Error
			if !errors.As(err, &te) {
				t.Fatalf("call %d: error %v is no *transport.Error", call, err)
			}
			e, derr := decodeError(te.Detail)
			if derr != nil || byte(e.Code) != te.Code {
				t.Fatalf("call %d: transport error code %d with detail %x: %+v, %v; want the error frame of that code", call, te.Code, te.Detail, e, derr)
			}
			code = e.Code
		}
		if !id.Valid() {
			if code != CodeBadRequest {
				t.Fatalf("unknown call %d: %v, want a bad request", call, err)
			}
			return
		}
		if code == CodeInternal {
			t.Fatalf("%s: internal error for a %d-byte frame: %v", id, len(body), err)
		}
		if err == nil {
			if derr := responseDecodes(id.String(), resp); derr != nil {
				t.Fatalf("%s: a response that is not its response frame: %v", id, derr)
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, PathPrefix+id.String(), bytes.NewReader(body)))
		if rec.Code == http.StatusOK {
			if err != nil {
				t.Fatalf("%s: the transport answered %v, HTTP/2 200", id, err)
			}
			if id != CallCoordinate && id != CallMerge && id != CallMergeBatch && id != CallHint && id != CallCover && !bytes.Equal(rec.Body.Bytes(), resp) {
				t.Fatalf("%s: the transport answered %x, HTTP/2 %x", id, resp, rec.Body.Bytes())
			}
			return
		}
		e, derr := decodeError(rec.Body.Bytes())
		if derr != nil || e.Code != code {
			t.Fatalf("%s: HTTP/2 answered %d %+v (%v), the transport %v", id, rec.Code, e, derr, err)
		}
	})
}

// requestDecodes runs the Decoder of call's request frame.
func requestDecodes(call string, b []byte) error {
	var err error
	switch call {
	case CallGet.String():
		_, err = decodeGetRequest(b)
	case CallMerge.String():
		_, err = decodeMergeRequest(b)
	case CallMergeBatch.String():
		_, err = decodeMergeBatchRequest(b)
	case CallCoordinate.String():
		_, err = decodeCoordinateRequest(b)
	case CallCover.String():
		_, err = decodeCoverRequest(b)
	default:
		err = fmt.Errorf("no call %q", call)
	}
	return err
}

// responseDecodes runs the Decoder of call's response frame.
func responseDecodes(call string, b []byte) error {
	var err error
	switch call {
	case CallGet.String():
		_, err = decodeGetResponse(b)
	case CallMerge.String(), CallMergeBatch.String():
		err = DecodeAck(b)
	case CallCoordinate.String():
		_, err = decodeCoordinateResult(b)
	case CallCover.String():
		_, err = decodeCoverResult(b)
	default:
		err = fmt.Errorf("no call %q", call)
	}
	return err
}

// FuzzReadBody: the RPC body reader (the first thing a call does with a
// peer's bytes) returns the body exactly when it is no longer than the
// limit and, when announced, exactly as long as announced; it never
// allocates more than the limit for an announced length, and it reads the
// same through a reader that returns one byte at a time.
func FuzzReadBody(f *testing.F) {
	f.Add([]byte("frame"), int64(5), int64(16))
	f.Add([]byte("frame"), int64(-1), int64(16))
	f.Add([]byte("frame"), int64(-1), int64(4))
	f.Add([]byte("frame"), int64(4), int64(16))
	f.Add([]byte("frame"), int64(6), int64(16))
	f.Add([]byte{}, int64(1<<62), int64(16))
	f.Fuzz(func(t *testing.T, body []byte, length, limit int64) {
		if limit < 0 || limit > 1<<20 {
			return // limits are constants in the code (MaxFrameBytes)
		}
		if length < -1 {
			length = -1 // net/http reports an unknown length as -1
		}
		for _, r := range []io.Reader{bytes.NewReader(body), iotest.OneByteReader(bytes.NewReader(body))} {
			got, err := readBody(r, length, limit)
			ok := int64(len(body)) <= limit && (length < 0 || length == int64(len(body)))
			if ok != (err == nil) {
				t.Fatalf("readBody(%d bytes, length %d, limit %d): err %v, want ok=%v", len(body), length, limit, err, ok)
			}
			if err == nil && !bytes.Equal(got, body) {
				t.Fatalf("readBody returned %d bytes, want the %d of the body", len(got), len(body))
			}
		}
	})
}
