package transport

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// benchPayload is the size of a small replica read or merge (a key and a
// 100-byte value with its context).
const benchPayload = 160

func benchHandler(_ context.Context, _ byte, payload []byte) ([]byte, error) {
	return payload, nil
}

// BenchmarkCall: a small call's round trip over loopback, one caller at a
// time (sequential: latency) and 64 callers sharing the connection
// (parallel: throughput on the 2-core machine, as dynkv bench runs), plain,
// keyed (every frame MACed) and over TLS.
func BenchmarkCall(b *testing.B) {
	pki := newTestPKI(b)
	keys := mustKeys(b, "bench")
	for _, mode := range []struct {
		name string
		srv  *Server
		tls  bool
		cfg  ClientConfig
	}{
		{"plain", &Server{Handler: benchHandler}, false, ClientConfig{}},
		{"keyed", &Server{Handler: benchHandler, Keys: keys}, false, ClientConfig{Keys: keys}},
		{"tls", &Server{Handler: benchHandler, Authorize: requireClientCert}, true, ClientConfig{TLS: pki.clientTLS(&pki.client)}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			var p *testPeer
			if mode.tls {
				p = startPeer(b, mode.srv, pki.serverTLS())
			} else {
				p = startPeer(b, mode.srv, nil)
			}
			c := newTestClient(b, mode.cfg)
			payload := bytes.Repeat([]byte{'v'}, benchPayload)
			call := func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_, err := c.Call(ctx, p.addr, 1, payload)
				return err
			}
			if err := call(); err != nil { // dial outside the timing
				b.Fatal(err)
			}
			benchCalls(b, call)
		})
	}
}

// BenchmarkHTTP2Call is the same round trip as the replication client
// makes it today: POST over h2c with prior knowledge, one connection,
// the body read in full on both sides (without the HMAC signature, which
// adds about 3 us a call: docs/internals.md).
func BenchmarkHTTP2Call(b *testing.B) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/x-dynkv-rpc")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	p := startPeerWith(b, &Server{Handler: benchHandler}, nil, h)
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols, MaxConnsPerHost: 1, DisableCompression: true,
		HTTP2: &http.HTTP2Config{StrictMaxConcurrentRequests: true}}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	url := "http://" + p.addr + "/other"
	payload := bytes.Repeat([]byte{'v'}, benchPayload)
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header["Content-Type"] = []string{"application/x-dynkv-rpc"}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		return err
	}
	if err := call(); err != nil {
		b.Fatal(err)
	}
	benchCalls(b, call)
}

// benchCalls times call one at a time and from 32 × GOMAXPROCS callers at
// once, so the transport and HTTP/2 figures come from the same loops.
func benchCalls(b *testing.B, call func() error) {
	b.Run("sequential", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := call(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.SetParallelism(32)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := call(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkFrameMAC is the cost of authenticating one small frame.
func BenchmarkFrameMAC(b *testing.B) {
	m := newFrameMAC([]byte("bench"))
	var hdr [headerSize]byte
	payload := make([]byte, benchPayload)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		m.compute(hdr[:], payload)
	}
}
