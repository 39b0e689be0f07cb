package cluster

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/dynkv/dynkv/test/testnode"
)

// memberlistMessageTypes are the first bytes memberlist dispatches on
// (ping, indirect ping, ack, suspect, alive, dead, push-pull, compound,
// user, compress, encrypt, nack, has-crc, err) plus its label prefix: junk
// behind each of them reaches a different decoder.
var memberlistMessageTypes = []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 244}

// rpcCalls are the node-to-node calls under /internal/v1/.
var rpcCalls = []string{"get", "merge", "merge-batch", "coordinate", "hint", "aae-roots", "aae-tree", "aae-keys"}

// TestGarbageOnEverySocketLeavesTheClusterWhole sends random and
// half-valid bytes to every port of a live two-node cluster: gossip over
// UDP and TCP, the HTTP port as raw TCP, as an HTTP/2 connection, as
// HTTP/2 RPC calls with junk frames and as the node-to-node transport
// (junk right after the upgrade, after a valid hello, as call payloads and
// as frames), and the Redis port. Afterwards
// both nodes must still be up, still one cluster, hold every acknowledged
// write, and have logged no panic (SPEC section 3: no request can crash a
// node or corrupt its data). The cluster runs without a gossip key, so the
// junk reaches memberlist's decoders instead of failing decryption.
func TestGarbageOnEverySocketLeavesTheClusterWhole(t *testing.T) {
	rng := seeded(t)
	c := testnode.Start(t, 1, testnode.Options{})
	n0, n1 := c.Nodes[0], c.NewNode()
	// Node 1 also serves the Redis protocol, on a port of its own.
	host, _, _ := net.SplitHostPort(n1.Addr())
	respAddr, err := testnode.FreePort(host)
	if err != nil {
		t.Fatal(err)
	}
	n1.SetArgs(append(n1.Args(), "--resp-addr", respAddr))
	n1.Start()
	c.WaitConverged(testnode.ConvergeTimeout, c.IDs()...)

	q := testnode.KV{W: 2, R: 2}
	var acked []write
	for i := range 20 {
		w := write{key: fmt.Sprintf("garbage/before/%02d", i), value: fmt.Appendf(nil, "v%d-%x", i, rng.Uint64())}
		mustPut(t, c.Nodes[i%2], w.key, w.value, q)
		acked = append(acked, w)
	}

	junk := func(max int) []byte {
		b := make([]byte, 1+rng.IntN(max))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var sent struct{ udp, tcp, http, h2, rpc, upgraded, frames, resp int }
	for _, nd := range c.Nodes {
		// Gossip over UDP: random packets and every message type with
		// junk behind it.
		udp, err := net.Dial("udp", nd.GossipAddr())
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			p := junk(1400)
			if i < 2*len(memberlistMessageTypes) {
				p[0] = memberlistMessageTypes[i%len(memberlistMessageTypes)]
			}
			_, _ = udp.Write(p) // nobody answers junk; errors do not matter
			sent.udp++
		}
		udp.Close()
		// Gossip over TCP: the stream side (push-pull, user messages).
		for i := range 2 * len(memberlistMessageTypes) {
			p := junk(4096)
			p[0] = memberlistMessageTypes[i%len(memberlistMessageTypes)]
			if i >= len(memberlistMessageTypes) && len(p) > 5 {
				// A frame that claims a huge length.
				copy(p[1:], []byte{0xff, 0xff, 0xff, 0x7f})
			}
			testnode.SendAndClose(t, nd.GossipAddr(), p, 200*time.Millisecond)
			sent.tcp++
		}
		// The HTTP port as raw TCP, and as HTTP/2 (prior knowledge) with
		// junk after the preface and after a valid SETTINGS frame.
		for range 10 {
			testnode.SendAndClose(t, nd.Addr(), junk(8192), 200*time.Millisecond)
			sent.http++
		}
		preface := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
		settings := []byte{0, 0, 0, 4, 0, 0, 0, 0, 0}
		for i := range 10 {
			p := append([]byte{}, preface...)
			if i%2 == 1 {
				p = append(p, settings...)
			}
			testnode.SendAndClose(t, nd.Addr(), append(p, junk(4096)...), 200*time.Millisecond)
			sent.h2++
		}
		// Every RPC call with junk frames: each must be refused with a
		// 4xx error frame, never a 5xx or a dropped connection.
		hc := &http.Client{Timeout: 10 * time.Second}
		for _, call := range rpcCalls {
			for i := range 6 {
				body := junk(2048)
				if i == 0 {
					body = body[:1]
				}
				if i == 1 {
					body[0] = 1 // a plausible version byte
				}
				url := nd.URL() + "/internal/v1/" + call
				resp, err := hc.Post(url, "application/x-dynkv-rpc", bytes.NewReader(body))
				if err != nil {
					t.Fatalf("POST %s with %d junk bytes: %v (want a 4xx error frame)", url, len(body), err)
				}
				resp.Body.Close()
				if resp.StatusCode < 400 || resp.StatusCode >= 500 {
					t.Errorf("POST %s with %d junk bytes: status %d, want 4xx", url, len(body), resp.StatusCode)
				}
				sent.rpc++
			}
		}
		// The transport: junk right after the upgrade, and after a
		// valid hello; then, on a connection whose handshake is done,
		// every call with junk payloads, each of which must be answered
		// with an error frame of a 4xx kind, and last junk frames, which
		// must close that connection (after a refusal saying why).
		for i := range 10 {
			nc, _ := rpcUpgrade(t, nd.Addr())
			p := junk(4096)
			if i%2 == 1 {
				p = append(rpcHello(), p...)
			}
			_, _ = nc.Write(p)
			time.Sleep(20 * time.Millisecond)
			nc.Close()
			sent.upgraded++
		}
		nc, br := rpcUpgrade(t, nd.Addr())
		if _, err := nc.Write(rpcHello()); err != nil {
			t.Fatal(err)
		}
		if f, err := readRPCFrame(br); err != nil || f.typ != rpcWelcome {
			t.Fatalf("transport handshake with %s: %+v, %v; want a welcome", nd.ID(), f, err)
		}
		id := uint64(0)
		for call := byte(1); call <= 8; call++ {
			for i := range 6 {
				body := junk(2048)
				if i == 0 {
					body = body[:1]
				}
				if i == 1 {
					body[0] = 1 // a plausible version byte
				}
				id++
				if _, err := nc.Write(rpcFrame(rpcRequest, call, id, 5_000_000, body)); err != nil {
					t.Fatal(err)
				}
				f, err := readRPCFrame(br)
				if err != nil {
					t.Fatalf("transport call %d to %s with %d junk bytes: %v (want an error frame)", call, nd.ID(), len(body), err)
				}
				if f.typ != rpcError || f.id != id || !junkRefusal[f.code] {
					t.Errorf("transport call %d to %s with %d junk bytes: frame %+v, want an error frame for ID %d with a bad-request kind of code", call, nd.ID(), len(body), f, id)
				}
				sent.frames++
			}
		}
		for _, p := range [][]byte{
			junk(4096),
			rpcFrame(rpcRequest, 1, id+1, 0, nil)[:16],                                           // a torn header
			append(rpcFrame(rpcRequest, 1, 0, 0, nil), junk(64)...),                              // request ID 0
			{0xD1, rpcRequest, 1, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0}, // announces 4 GiB
		} {
			if _, err := nc.Write(p); err != nil {
				break // already closed by an earlier one
			}
			sent.frames++
		}
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			if _, err := readRPCFrame(br); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Errorf("%s kept a transport connection open after junk frames, want it closed", nd.ID())
				}
				break
			}
		}
		nc.Close()
	}
	// The Redis port: random bytes, and protocol headers with absurd lengths.
	for i := range 20 {
		p := junk(4096)
		switch i % 4 {
		case 1:
			p = append([]byte("*999999999999\r\n"), p...)
		case 2:
			p = append([]byte("*1\r\n$9223372036854775807\r\n"), p...)
		case 3:
			p = append([]byte("*2\r\n$3\r\nGET\r\n$-5\r\n"), p...)
		}
		testnode.SendAndClose(t, respAddr, p, 200*time.Millisecond)
		sent.resp++
	}
	t.Logf("garbage sent: %d UDP gossip packets, %d TCP gossip streams, %d raw HTTP, %d HTTP/2, %d RPC calls, %d upgraded streams, %d transport frames, %d Redis streams",
		sent.udp, sent.tcp, sent.http, sent.h2, sent.rpc, sent.upgraded, sent.frames, sent.resp)

	// Still one cluster, still serving, nothing lost.
	c.WaitConverged(testnode.ConvergeTimeout, c.IDs()...)
	for i := range 10 {
		w := write{key: fmt.Sprintf("garbage/after/%02d", i), value: fmt.Appendf(nil, "after %d", i)}
		mustPut(t, c.Nodes[i%2], w.key, w.value, q)
		acked = append(acked, w)
	}
	for _, w := range acked {
		for _, nd := range []*testnode.Node{n0, n1} {
			if err := checkExact(nd, w.key, w.value, q); err != nil {
				t.Errorf("after the garbage: %v", err)
			}
		}
	}
	rc, err := net.DialTimeout("tcp", respAddr, 5*time.Second)
	if err != nil {
		t.Fatalf("Redis port after the garbage: %v", err)
	}
	defer rc.Close()
	_ = rc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(rc, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(acked[0].key), acked[0].key)
	buf := make([]byte, 256)
	nr, _ := rc.Read(buf)
	if want := fmt.Sprintf("$%d\r\n%s\r\n", len(acked[0].value), acked[0].value); string(buf[:nr]) != want {
		t.Errorf("Redis GET %q after the garbage = %q, want %q", acked[0].key, buf[:nr], want)
	}
	for _, nd := range c.Nodes {
		for _, p := range []string{"panic:", "panic in"} {
			if nd.LogContains(p) {
				t.Errorf("node %s logged %q after the garbage, want no panic", nd.ID(), p)
			}
		}
		if !nd.Running() {
			t.Errorf("node %s exited after the garbage", nd.ID())
		}
	}
}

// The node-to-node transport's wire format as far as this test speaks it
// (replication/rpc/transport/frame.go and handshake.go; the cluster runs
// without a gossip key, so frames carry no MAC).
const (
	rpcHelloType byte = 1
	rpcWelcome   byte = 2
	rpcRequest   byte = 5
	rpcError     byte = 7
)

// junkRefusal are the error codes (replication's, in the error frame's
// code byte) a call with a junk payload may get: kinds of bad request,
// and not found; never internal or unavailable.
var junkRefusal = map[byte]bool{2: true, 3: true, 7: true, 8: true}

type rpcFrameHeader struct {
	typ, code byte
	id        uint64
	payload   []byte
}

func rpcFrame(typ, code byte, id uint64, timeoutMicros uint32, payload []byte) []byte {
	b := make([]byte, 20, 20+len(payload))
	b[0], b[1], b[2] = 0xD1, typ, code
	binary.BigEndian.PutUint32(b[4:], uint32(len(payload)))
	binary.BigEndian.PutUint64(b[8:], id)
	binary.BigEndian.PutUint32(b[16:], timeoutMicros)
	return append(b, payload...)
}

// rpcHello is an unkeyed client hello: version 1, no flags, a nonce, and a
// largest response of 1 MiB.
func rpcHello() []byte {
	p := make([]byte, 38)
	p[0] = 1
	for i := 2; i < 34; i++ {
		p[i] = byte(i)
	}
	binary.BigEndian.PutUint32(p[34:], 1<<20)
	return rpcFrame(rpcHelloType, 0, 0, 0, p)
}

func readRPCFrame(br *bufio.Reader) (rpcFrameHeader, error) {
	var h [20]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return rpcFrameHeader{}, err
	}
	f := rpcFrameHeader{typ: h[1], code: h[2], id: binary.BigEndian.Uint64(h[8:])}
	n := binary.BigEndian.Uint32(h[4:])
	if h[0] != 0xD1 || n > 1<<20 {
		return f, fmt.Errorf("not a transport frame: % x", h)
	}
	f.payload = make([]byte, n)
	_, err := io.ReadFull(br, f.payload)
	return f, err
}

// rpcUpgrade dials addr and upgrades the connection to the node-to-node
// transport, returning it with the reader past the 101.
func rpcUpgrade(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(nc, "GET /internal/v1/rpc HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: dynkv-rpc/1\r\n\r\n", addr)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade at %s: %v", addr, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade at %s: %s, want 101", addr, resp.Status)
	}
	return nc, br
}
