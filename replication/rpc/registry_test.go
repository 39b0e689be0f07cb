package rpc

import (
	"context"
	"errors"
	"testing"
)

// A call no room registered answers unavailable both ways in (as a node
// without anti-entropy always did for the aae-* calls), and a registered
// handler serves it both ways in.
func TestRoomCallsAreServedOnlyOnceRegistered(t *testing.T) {
	eachWay(t, func(t *testing.T, w via) {
		checkLeaks(t)
		srv := &Server{Store: openStore(t)}
		p := w.start(t, srv)
		c := newTestClient(t, ClientConfig{Retries: -1})
		for _, id := range []Call{CallHint, CallAAETree, CallAAEKeys, CallAAERoots} {
			if _, err := c.Invoke(ctxTimeout(t), p.addr, id, nil); !errors.Is(err, ErrUnavailable) {
				t.Errorf("%s, not registered: %v, want ErrUnavailable", id, err)
			}
		}
		var got []byte
		srv.Handle(CallAAERoots, func(_ context.Context, body []byte) ([]byte, error) {
			got = body
			return Ack(), nil
		})
		resp, err := c.Invoke(ctxTimeout(t), p.addr, CallAAERoots, []byte("frame"))
		if err != nil || DecodeAck(resp) != nil || string(got) != "frame" {
			t.Fatalf("registered aae-roots: %x, %v; the handler got %q", resp, err, got)
		}
	})
}

func TestHandleRefusesAnUnknownCall(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Handle of call 0 did not panic")
		}
	}()
	(&Server{}).Handle(0, nil)
}
