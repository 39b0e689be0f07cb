package rpc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dynkv/dynkv/replication/rpc/transport"
)

var (
	secretOld = []byte("0123456789abcdef0123456789abcdef")
	secretNew = []byte("fedcba9876543210fedcba9876543210")
)

func peerKeys(t testing.TB, secrets ...[]byte) *PeerKeys {
	t.Helper()
	k, err := NewPeerKeys(secrets)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signedRequest is a merge call signed by k at time at.
func signedRequest(t testing.TB, k *PeerKeys, body []byte, at time.Time) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, PathPrefix+CallMerge.String(), bytes.NewReader(body))
	if err := k.Sign(r, body, at); err != nil {
		t.Fatal(err)
	}
	return r
}

func verify(k *PeerKeys, r *http.Request, body []byte, now time.Time) error {
	sig, err := k.VerifyHeader(r, now)
	if err != nil {
		return err
	}
	return sig.VerifyBody(body)
}

// setField replaces field name ("t", "n", "h" or "b") of the signature.
func setField(r *http.Request, name, value string) {
	fields := strings.Split(r.Header.Get(PeerAuthHeader), " ")
	for i, f := range fields {
		if strings.HasPrefix(f, name+"=") {
			fields[i] = name + "=" + value
		}
	}
	r.Header.Set(PeerAuthHeader, strings.Join(fields, " "))
}

func TestPeerSignatureIsAcceptedByTheSameKeys(t *testing.T) {
	k := peerKeys(t, secretOld)
	now := time.Unix(1_800_000_000, 0)
	for _, size := range []int{0, 1, 100, 64 << 10} {
		body := bytes.Repeat([]byte{'x'}, size)
		if err := verify(k, signedRequest(t, k, body, now), body, now); err != nil {
			t.Errorf("%d-byte body: a good signature was refused: %v", size, err)
		}
	}
	// Anywhere inside the skew window, either way.
	body := []byte("frame")
	for _, d := range []time.Duration{MaxPeerClockSkew, -MaxPeerClockSkew, time.Second} {
		if err := verify(k, signedRequest(t, k, body, now.Add(d)), body, now); err != nil {
			t.Errorf("signed %s from the verifier's clock: refused: %v", d, err)
		}
	}
}

func TestPeerSignatureRefusesForgeriesAndTampering(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte("a merge frame")
	k := peerKeys(t, secretOld)
	for _, tc := range []struct {
		name string
		make func() (*http.Request, []byte)
		want string // in the error
	}{
		{"no header", func() (*http.Request, []byte) {
			r := signedRequest(t, k, body, now)
			r.Header.Del(PeerAuthHeader)
			return r, body
		}, "no X-Dynkv-Auth header"},
		{"two headers", func() (*http.Request, []byte) {
			r := signedRequest(t, k, body, now)
			r.Header.Add(PeerAuthHeader, r.Header.Get(PeerAuthHeader))
			return r, body
		}, "2 X-Dynkv-Auth headers"},
		{"wrong key", func() (*http.Request, []byte) {
			return signedRequest(t, peerKeys(t, secretNew), body, now), body
		}, "matches none of this node's keys"},
		{"the secret used directly as the MAC key", func() (*http.Request, []byte) {
			r := signedRequest(t, k, body, now)
			a, _ := parsePeerAuth(r.Header.Get(PeerAuthHeader))
			raw := newMACKey(secretOld)
			a.headerMAC = headerMAC(raw, r.Method, r.URL.Path, a.unix, int64(len(body)), a.nonce)
			a.bodyMAC = bodyMAC(raw, a.headerMAC, body)
			r.Header.Set(PeerAuthHeader, a.String())
			return r, body
		}, "matches none"},
		{"tampered body", func() (*http.Request, []byte) {
			b := bytes.Clone(body)
			b[0] ^= 1
			return signedRequest(t, k, body, now), b
		}, "body does not match"},
		{"body MAC moved from another request", func() (*http.Request, []byte) {
			other := []byte("another frame")
			r := signedRequest(t, k, body, now)
			o := signedRequest(t, k, other, now)
			a, _ := parsePeerAuth(o.Header.Get(PeerAuthHeader))
			setField(r, "b", fmt.Sprintf("%x", a.bodyMAC))
			return r, other
		}, "body does not match"},
		{"tampered path", func() (*http.Request, []byte) {
			r := signedRequest(t, k, body, now)
			r.URL.Path = PathPrefix + CallCoordinate.String()
			return r, body
		}, "matches none"},
		{"tampered method", func() (*http.Request, []byte) {
			r := signedRequest(t, k, body, now)
			r.Method = http.MethodPut
			return r, body
		}, "matches none"},
		{"tampered length", func() (*http.Request, []byte) {
			r := signedRequest(t, k, body, now)
			r.ContentLength++
			return r, body
		}, "matches none"},
		{"tampered time", func() (*http.Request, []byte) {
			r := signedRequest(t, k, body, now)
			setField(r, "t", strconv.FormatInt(now.Unix()+1, 10))
			return r, body
		}, "matches none"},
		{"tampered nonce", func() (*http.Request, []byte) {
			r := signedRequest(t, k, body, now)
			setField(r, "n", strings.Repeat("00", peerNonceBytes))
			return r, body
		}, "matches none"},
		{"stale", func() (*http.Request, []byte) {
			return signedRequest(t, k, body, now.Add(-MaxPeerClockSkew-time.Second)), body
		}, "clock is 5m1s behind this node's (limit 5m0s): check NTP"},
		{"from the future", func() (*http.Request, []byte) {
			return signedRequest(t, k, body, now.Add(time.Hour)), body
		}, "clock is 1h0m0s ahead of this node's"},
		{"malformed", func() (*http.Request, []byte) {
			r := signedRequest(t, k, body, now)
			r.Header.Set(PeerAuthHeader, "v1 t=1 n=zz h= b=")
			return r, body
		}, "n= has 2 hex digits, want 32"},
		{"another version", func() (*http.Request, []byte) {
			r := signedRequest(t, k, body, now)
			r.Header.Set(PeerAuthHeader, "v2 "+strings.TrimPrefix(r.Header.Get(PeerAuthHeader), "v1 "))
			return r, body
		}, `does not start with "v1"`},
	} {
		r, b := tc.make()
		err := verify(k, r, b, now)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if !errors.Is(err, ErrPeerAuth) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want ErrPeerAuth saying %q", tc.name, err, tc.want)
		}
	}
}

// The three-step rolling rotation from old to new: every node on
// [old,new], then [new,old], then [new]. Neighbouring steps must accept
// each other's requests in both directions; a node left on [old] is
// refused once the cluster is on [new].
func TestPeerKeyRotation(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte("frame")
	steps := [][][]byte{{secretOld}, {secretOld, secretNew}, {secretNew, secretOld}, {secretNew}}
	for i := 0; i+1 < len(steps); i++ {
		a, b := peerKeys(t, steps[i]...), peerKeys(t, steps[i+1]...)
		if err := verify(b, signedRequest(t, a, body, now), body, now); err != nil {
			t.Errorf("step %d -> %d: refused: %v", i, i+1, err)
		}
		if err := verify(a, signedRequest(t, b, body, now), body, now); err != nil {
			t.Errorf("step %d -> %d: refused: %v", i+1, i, err)
		}
	}
	old, rotated := peerKeys(t, secretOld), peerKeys(t, secretNew)
	if err := verify(rotated, signedRequest(t, old, body, now), body, now); !errors.Is(err, ErrPeerAuth) {
		t.Errorf("a request signed with the rotated-out key: %v, want refused", err)
	}
	if err := verify(old, signedRequest(t, rotated, body, now), body, now); !errors.Is(err, ErrPeerAuth) {
		t.Errorf("a node left on the old key accepted the new one: %v", err)
	}
}

func TestNewPeerKeys(t *testing.T) {
	if k, err := NewPeerKeys(nil); k != nil || err != nil {
		t.Errorf("no secrets: %v, %v; want nil, nil (no signing)", k, err)
	}
	if _, err := NewPeerKeys([][]byte{secretOld, {}}); err == nil || !strings.Contains(err.Error(), "secret 2 of 2 is empty") {
		t.Errorf("an empty secret: %v, want an error naming it", err)
	}
}

// countingBody records whether the handler read the body.
type countingBody struct {
	r     io.Reader
	reads int
}

func (b *countingBody) Read(p []byte) (int, error) { b.reads++; return b.r.Read(p) }
func (b *countingBody) Close() error               { return nil }

// A stranger's call is refused from its header alone, before the server
// reads (and allocates for) a body of up to MaxFrameBytes, and writes
// nothing to the store.
func TestServerRefusesUnsignedCallsBeforeReadingTheBody(t *testing.T) {
	st := openStore(t)
	srv := &Server{Store: st, PeerKeys: peerKeys(t, secretOld)}
	frame := encodeMergeRequest(mergeRequest{DB: 0, Key: []byte("k"), Set: sampleSet("forged")})
	for name, sign := range map[string]func(*http.Request){
		"unsigned": func(*http.Request) {},
		"wrong key": func(r *http.Request) {
			if err := peerKeys(t, secretNew).Sign(r, frame, time.Now()); err != nil {
				t.Fatal(err)
			}
		},
		"stale": func(r *http.Request) {
			if err := srv.PeerKeys.Sign(r, frame, time.Now().Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
		},
	} {
		body := &countingBody{r: bytes.NewReader(frame)}
		r := httptest.NewRequest(http.MethodPost, PathPrefix+CallMerge.String(), body)
		r.ContentLength = int64(len(frame))
		sign(r)
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, r)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, w.Code)
		}
		if f, err := decodeError(w.Body.Bytes()); err != nil || f.Code != CodeUnauthorized {
			t.Errorf("%s: error frame %+v, %v; want CodeUnauthorized", name, f, err)
		}
		if body.reads != 0 {
			t.Errorf("%s: the body was read %d times before the refusal", name, body.reads)
		}
	}
	if _, err := st.Get(0, []byte("k")); err == nil {
		t.Fatal("a refused merge was written")
	}
}

func TestSignedCallsRoundTripAndStrangersAreRefused(t *testing.T) {
	checkLeaks(t)
	st := openStore(t)
	// The server is mid-rotation; the member signs with the new key.
	f := &flaky{h: (&Server{Store: st, PeerKeys: peerKeys(t, secretOld, secretNew)}).Handler()}
	p := startPeer(t, f)
	member := newTestClient(t, ClientConfig{PeerKeys: peerKeys(t, secretNew, secretOld)})
	if err := member.Merge(ctxTimeout(t), p.addr, 0, []byte("k"), sampleSet("v")); err != nil {
		t.Fatalf("Merge by a member: %v", err)
	}
	if _, found, err := member.Get(ctxTimeout(t), p.addr, 0, []byte("k")); err != nil || !found {
		t.Fatalf("Get by a member: found=%v err=%v", found, err)
	}
	for name, cfg := range map[string]ClientConfig{
		"unsigned":  {},
		"wrong key": {PeerKeys: peerKeys(t, []byte("not this cluster's secret"))},
	} {
		before := f.calls.Load()
		err := newTestClient(t, cfg).Merge(ctxTimeout(t), p.addr, 0, []byte("forged"), sampleSet("x"))
		if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "X-Dynkv-Auth") && !strings.Contains(err.Error(), "--gossip-key") {
			t.Errorf("%s: Merge: %v, want ErrUnauthorized naming the cause", name, err)
		}
		if n := f.calls.Load() - before; n != 1 {
			t.Errorf("%s: a refused signature was tried %d times, want once", name, n)
		}
	}
	if _, err := st.Get(0, []byte("forged")); err == nil {
		t.Fatal("a stranger's merge was written")
	}
	// Both checks apply when both are configured.
	both := &Server{Store: st, PeerKeys: peerKeys(t, secretOld), Authorize: func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "Bearer tok"
	}}
	p2 := startPeer(t, both.Handler())
	for name, tc := range map[string]struct {
		cfg ClientConfig
		ok  bool
	}{
		"signature only": {ClientConfig{PeerKeys: peerKeys(t, secretOld)}, false},
		"token only":     {ClientConfig{AuthToken: "tok"}, false},
		"both":           {ClientConfig{AuthToken: "tok", PeerKeys: peerKeys(t, secretOld)}, true},
	} {
		_, _, err := newTestClient(t, tc.cfg).Get(ctxTimeout(t), p2.addr, 0, []byte("k"))
		if (err == nil) != tc.ok {
			t.Errorf("%s: Get: %v, want ok=%v", name, err, tc.ok)
		}
	}
}

// BenchmarkPeerAuth is what signing and verifying cost per call, to set
// against BenchmarkMergeRoundTrip and BenchmarkGetRoundTrip.
func BenchmarkPeerAuth(b *testing.B) {
	k := peerKeys(b, secretOld)
	for _, size := range []int{100, 64 << 10} {
		b.Run(fmt.Sprintf("body=%d", size), func(b *testing.B) {
			body := make([]byte, size)
			r := httptest.NewRequest(http.MethodPost, PathPrefix+CallMerge.String(), nil)
			r.ContentLength = int64(size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := k.Sign(r, body, time.Now()); err != nil {
					b.Fatal(err)
				}
				if err := verify(k, r, body, time.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSignedGetRoundTrip is BenchmarkGetRoundTrip with signing on
// both sides, sign=off and sign=on in one run so their ratio is what
// signing costs a replica read: over HTTP/2 the signature of each request
// (PeerKeys), over the transport the keyed handshake and a MAC on every
// frame both ways (transport.Keyring).
func BenchmarkSignedGetRoundTrip(b *testing.B) {
	st := getBenchStore(b)
	for _, sign := range []bool{false, true} {
		name := "sign=off"
		var keys *PeerKeys
		var ring *transport.Keyring
		if sign {
			name = "sign=on"
			keys, ring = peerKeys(b, secretOld), transportKeys(b, secretOld)
		}
		for _, http2 := range []bool{false, true} {
			b.Run(name+"/"+viaName(http2), func(b *testing.B) { benchGets(b, st, keys, ring, http2) })
		}
	}
}

func transportKeys(t testing.TB, secrets ...[]byte) *transport.Keyring {
	t.Helper()
	k, err := transport.NewKeyring(secrets)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKeyedCallsRoundTripAndStrangersAreRefused is the transport's
// counterpart of TestSignedCallsRoundTripAndStrangersAreRefused: members
// holding a key of the peer's ring (mid-rotation) get through, a caller
// without the keyed handshake or with another key is refused, once, with
// an error that names --gossip-key, and writes nothing; with a bearer
// check on top, both must pass.
func TestKeyedCallsRoundTripAndStrangersAreRefused(t *testing.T) {
	checkLeaks(t)
	st := openStore(t)
	p := startServer(t, &Server{Store: st}, serverConfig{keys: transportKeys(t, secretOld, secretNew)})
	member := newTestClient(t, ClientConfig{Keys: transportKeys(t, secretNew, secretOld)})
	if err := member.Merge(ctxTimeout(t), p.addr, 0, []byte("k"), sampleSet("v")); err != nil {
		t.Fatalf("Merge by a member: %v", err)
	}
	if _, found, err := member.Get(ctxTimeout(t), p.addr, 0, []byte("k")); err != nil || !found {
		t.Fatalf("Get by a member: found=%v err=%v", found, err)
	}
	for name, cfg := range map[string]ClientConfig{
		"unkeyed":   {},
		"wrong key": {Keys: transportKeys(t, []byte("not this cluster's secret"))},
	} {
		before := p.upgrades.Load()
		err := newTestClient(t, cfg).Merge(ctxTimeout(t), p.addr, 0, []byte("forged"), sampleSet("x"))
		if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "--gossip-key") {
			t.Errorf("%s: Merge: %v, want ErrUnauthorized naming the cause", name, err)
		}
		if n := p.upgrades.Load() - before; n != 1 {
			t.Errorf("%s: a refused handshake was tried %d times, want once", name, n)
		}
	}
	if _, err := st.Get(0, []byte("forged")); err == nil {
		t.Fatal("a stranger's merge was written")
	}
	both := &Server{Store: st, Authorize: func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "Bearer tok"
	}}
	p2 := startServer(t, both, serverConfig{keys: transportKeys(t, secretOld)})
	for name, tc := range map[string]struct {
		cfg ClientConfig
		ok  bool
	}{
		"key only":   {ClientConfig{Keys: transportKeys(t, secretOld)}, false},
		"token only": {ClientConfig{AuthToken: "tok"}, false},
		"both":       {ClientConfig{AuthToken: "tok", Keys: transportKeys(t, secretOld)}, true},
	} {
		_, _, err := newTestClient(t, tc.cfg).Get(ctxTimeout(t), p2.addr, 0, []byte("k"))
		if (err == nil) != tc.ok {
			t.Errorf("%s: Get: %v, want ok=%v", name, err, tc.ok)
		}
	}
}
