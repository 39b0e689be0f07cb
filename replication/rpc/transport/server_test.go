package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// frameBytes is a frame's encoding, for tests that corrupt it.
func frameBytes(h header, payload []byte) []byte { return appendFrame(nil, h, payload, nil) }

func TestGarbageClosesTheConnectionAndTheServerStaysUp(t *testing.T) {
	var ran atomic.Int32
	h := func(ctx context.Context, call byte, payload []byte) ([]byte, error) {
		ran.Add(1)
		if call == 9 {
			<-ctx.Done()
		}
		return echo(ctx, call, payload)
	}
	p := startPeer(t, &Server{Handler: h, MaxFrameBytes: 1 << 20}, nil)
	c := newTestClient(t, ClientConfig{})
	hello := hello{maxFrame: DefaultMaxFrameBytes}.encode()
	withLength := func(b []byte, n uint32) []byte {
		binary.BigEndian.PutUint32(b[4:], n)
		return b
	}
	withByte := func(b []byte, i int, v byte) []byte {
		b[i] = v
		return b
	}
	req := header{typ: frameRequest, code: 1, id: 1}
	for _, tc := range []struct {
		name      string
		handshake bool // run the handshake before sending junk
		junk      []byte
		notice    string // in the server's refusal, "" for none expected
	}{
		{"text instead of a hello", false, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "bad magic"},
		{"hello announcing 1 GiB", false, withLength(frameBytes(header{typ: frameHello}, hello), 1<<30), "exceeds the limit"},
		{"hello of the wrong size", false, frameBytes(header{typ: frameHello}, hello[:10]), "hello of 10 bytes"},
		{"request before the handshake", false, frameBytes(req, nil), "want hello"},
		{"truncated hello", false, frameBytes(header{typ: frameHello}, hello)[:30], ""},
		{"bad magic", true, withByte(frameBytes(req, nil), 0, 'X'), "bad magic"},
		{"unknown frame type", true, withByte(frameBytes(req, nil), 1, 99), "unknown frame type 99"},
		{"reserved flags set", true, withByte(frameBytes(req, nil), 3, 1), "flags"},
		{"request ID 0", true, frameBytes(header{typ: frameRequest, code: 1}, nil), "request ID 0"},
		{"request over the server's limit", true, withLength(frameBytes(req, nil), 1<<20+1), "exceeds the limit of 1048576"},
		{"length of 4 GiB", true, withLength(frameBytes(req, nil), 1<<32-1), "exceeds the limit"},
		{"a response from the client", true, frameBytes(header{typ: frameResponse, id: 1}, nil), "unexpected response frame"},
		{"a ping with a payload", true, frameBytes(header{typ: framePing, id: 1}, []byte("x")), "at most 0"},
		{"a second hello", true, frameBytes(header{typ: frameHello}, hello), "unexpected hello"},
		{"duplicate request ID", true, append(frameBytes(header{typ: frameRequest, code: 9, id: 5}, nil),
			frameBytes(header{typ: frameRequest, code: 9, id: 5}, nil)...), "already running"},
		{"truncated request", true, frameBytes(req, []byte("hello"))[:23], ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ran.Load()
			nc := upgradeRaw(t, p.addr)
			br := bufio.NewReader(nc)
			if tc.handshake {
				if _, err := clientHandshake(nc, br, nil, DefaultMaxFrameBytes); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := nc.Write(tc.junk); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(tc.name, "truncated") {
				_ = nc.(*net.TCPConn).CloseWrite()
			}
			notice := expectClosed(t, nc, br)
			if !strings.Contains(notice, tc.notice) {
				t.Fatalf("the server's notice %q does not say %q", notice, tc.notice)
			}
			if tc.name != "duplicate request ID" && ran.Load() != before {
				t.Fatalf("a handler ran for junk")
			}
			resp, err := c.Call(ctxTimeout(t, 5*time.Second), p.addr, 3, []byte("still up"))
			if err != nil || string(resp) != "\x03still up" {
				t.Fatalf("a good call after the junk: %q, %v", resp, err)
			}
		})
	}
	eventually(t, 5*time.Second, "junk connections gone", func() bool { return p.srv.Load().connCount() == 1 })
}

func TestIdleConnectionIsClosedByTheServer(t *testing.T) {
	p := startPeer(t, &Server{Handler: echo, IdleTimeout: 50 * time.Millisecond}, nil)
	r := dialRaw(t, p.addr, nil)
	_ = r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := r.fr.read(); err == nil {
		t.Fatal("an idle connection got a frame, want it closed")
	}
	eventually(t, 5*time.Second, "the idle connection dropped", func() bool { return p.srv.Load().connCount() == 0 })
}

func TestUpgradeRequestsThatAreNotOursAreRefused(t *testing.T) {
	p := startPeer(t, &Server{Handler: echo}, nil)
	for _, req := range []string{
		"GET " + DefaultPath + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST " + DefaultPath + " HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: " + Protocol + "\r\nContent-Length: 0\r\n\r\n",
		"GET " + DefaultPath + " HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
	} {
		nc, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(nc).ReadString('\n')
		_ = nc.Close()
		if err != nil || !strings.HasPrefix(line, "HTTP/1.1 426 ") {
			t.Fatalf("%q answered %q, %v; want 426 Upgrade Required", req, line, err)
		}
	}
}
