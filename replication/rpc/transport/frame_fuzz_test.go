package transport

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// fuzzMACKey keys the MACed half of FuzzReadFrame; the seeds include
// frames MACed under it, so the fuzzer starts from valid ones.
var fuzzMACKey = []byte("fuzz frame mac key")

// fuzzSeeds are one valid stream per frame type, plus some damaged ones.
func fuzzSeeds() [][]byte {
	hl := hello{keyed: true, maxFrame: 1 << 20}.encode()
	wl, _ := welcome{keyed: true, maxFrame: 1 << 20, maxCalls: 256, proof: make([]byte, proofSize)}.encode()
	frames := []struct {
		h header
		p []byte
	}{
		{header{typ: frameHello}, hl},
		{header{typ: frameWelcome}, wl},
		{header{typ: frameProof}, make([]byte, proofSize)},
		{header{typ: frameReady}, make([]byte, confirmSize)},
		{header{typ: frameRequest, code: 3, id: 1, timeout: 2_000_000}, []byte("a small request")},
		{header{typ: frameResponse, id: 1}, []byte("its response")},
		{header{typ: frameError, code: 6, id: 2}, []byte("quorum")},
		{header{typ: frameRefused, code: refusedBusy, id: 3}, nil},
		{header{typ: frameRefused, code: refusedProtocol}, []byte("bad magic")},
		{header{typ: frameCancel, id: 4}, nil},
		{header{typ: framePing, id: 5}, nil},
		{header{typ: framePong, id: 5}, nil},
		{header{typ: frameGoAway}, []byte("shutting down")},
	}
	var seeds [][]byte
	var stream, macStream []byte
	m := newFrameMAC(fuzzMACKey)
	for _, f := range frames {
		one := appendFrame(nil, f.h, f.p, nil)
		seeds = append(seeds, one)
		stream = append(stream, one...)
		macStream = appendFrame(macStream, f.h, f.p, m)
	}
	seeds = append(seeds, stream, macStream)
	bad := appendFrame(nil, header{typ: frameRequest, code: 1, id: 1}, []byte("x"), nil)
	bad[4] = 0xFF // a huge length
	seeds = append(seeds, bad, []byte{magic}, []byte("GET / HTTP/1.1\r\n\r\n"))
	return seeds
}

// FuzzReadFrame feeds arbitrary bytes to the frame reader, plain and
// MACed: it must never panic or allocate past its limit, and every frame
// it accepts must be the canonical encoding of what it returned.
func FuzzReadFrame(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		const limit = 1 << 16
		for _, keyed := range []bool{false, true} {
			fr := &frameReader{br: bufio.NewReaderSize(bytes.NewReader(b), 64), limit: limit}
			var enc *frameMAC
			if keyed {
				fr.mac = newFrameMAC(fuzzMACKey)
				enc = newFrameMAC(fuzzMACKey)
			}
			rest := b
			for {
				h, p, err := fr.read()
				if err != nil {
					if errors.Is(err, io.EOF) && len(rest) != 0 {
						t.Fatalf("clean EOF with %d bytes left", len(rest))
					}
					break
				}
				if len(p) > limit || int(h.length) != len(p) {
					t.Fatalf("payload of %d bytes, header says %d, limit %d", len(p), h.length, limit)
				}
				again := appendFrame(nil, h, p, enc)
				if !bytes.HasPrefix(rest, again) {
					t.Fatalf("accepted a non-canonical frame: %x, re-encoded %x", rest[:min(len(rest), len(again))], again)
				}
				rest = rest[len(again):]
			}
		}
	})
}

// FuzzHandshakeMessages: hello and welcome decoders accept only what
// their encoders produce.
func FuzzHandshakeMessages(f *testing.F) {
	f.Add(hello{keyed: true, maxFrame: 1 << 20}.encode())
	f.Add(hello{maxFrame: 1}.encode())
	wl, _ := welcome{keyed: true, maxFrame: 64 << 20, maxCalls: 256, proof: make([]byte, proofSize)}.encode()
	f.Add(wl)
	wl, _ = welcome{maxFrame: 1, maxCalls: 1}.encode()
	f.Add(wl)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := decodeHello(b); err == nil {
			if again := h.encode(); !bytes.Equal(again, b) {
				t.Fatalf("hello %x re-encodes as %x", b, again)
			}
		}
		if w, err := decodeWelcome(b); err == nil {
			if again, _ := w.encode(); !bytes.Equal(again, b) {
				t.Fatalf("welcome %x re-encodes as %x", b, again)
			}
		}
	})
}
