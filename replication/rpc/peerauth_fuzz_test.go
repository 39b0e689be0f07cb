package rpc

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzPeerAuthHeader feeds arbitrary X-Dynkv-Auth values to the parser and
// to the server-side check: neither may panic, a header that parses must
// print back to itself (one canonical form, so no two spellings of one
// signature), and nothing a fuzzer writes may pass as signed by a key it
// does not know.
func FuzzPeerAuthHeader(f *testing.F) {
	k := peerKeys(f, secretOld)
	now := time.Unix(1_800_000_000, 0)
	// A fixed nonce: every fuzz worker process must compute the same
	// genuine header.
	a := peerAuth{unix: now.Unix(), nonce: [peerNonceBytes]byte{1, 2, 3}}
	a.headerMAC = headerMAC(k.keys[0], http.MethodPost, PathPrefix+CallMerge.String(), a.unix, int64(len("frame")), a.nonce)
	a.bodyMAC = bodyMAC(k.keys[0], a.headerMAC, []byte("frame"))
	good := a.String()
	for _, seed := range []string{
		good,
		"",
		"v1",
		"v1 t=1800000000",
		strings.Replace(good, "v1 ", "v2 ", 1),
		strings.Replace(good, " t=", " t=-", 1),
		strings.Replace(good, " t=", " t=0", 1),
		strings.Replace(good, " n=", " n=ZZ", 1),
		strings.Replace(good, " ", "  ", 1),
		good + " ",
		"v1 t=99999999999999999999 n=0 h=0 b=0",
		strings.Repeat("v1 ", 100),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		a, err := parsePeerAuth(header)
		if err == nil && a.String() != header {
			t.Fatalf("parsed %q, prints back as %q", header, a.String())
		}
		r := httptest.NewRequest(http.MethodPost, PathPrefix+CallMerge.String(), bytes.NewReader([]byte("frame")))
		r.Header.Set(PeerAuthHeader, header)
		sig, err := k.VerifyHeader(r, now)
		if err == nil {
			err = sig.VerifyBody([]byte("frame"))
		}
		if header == good {
			if err != nil {
				t.Fatalf("the genuine header was refused: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("a header the fuzzer made up passed: %q", header)
		}
		if !errors.Is(err, ErrPeerAuth) {
			t.Fatalf("refusal %v does not wrap ErrPeerAuth", err)
		}
	})
}
