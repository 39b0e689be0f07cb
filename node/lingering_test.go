package node

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"
)

// TestOversizedPutLingersForAClientThatSendsBeforeReading is the HTTP/1.1
// case of lingering.go: a client that writes its whole oversized body
// before it reads, without Expect: 100-continue, reads a complete 413 and
// then a clean end of the connection rather than a reset.
func TestOversizedPutLingersForAClientThatSendsBeforeReading(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxValueBytes = 1024
	cfg.HTTPLingerBytes = 16 << 20
	cfg.HTTPLingerTimeout = 30 * time.Second // the bytes end it, not the clock
	tn := startNode(t, &cfg, nil)
	// Far more than the socket buffers hold while the node reads nothing.
	body := bytes.Repeat([]byte("v"), 12<<20)

	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			c, err := net.Dial("tcp", tn.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
			bw := bufio.NewWriter(c)
			if chunked {
				fmt.Fprintf(bw, "PUT /kv/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
				for rest := body; len(rest) > 0; {
					n := min(len(rest), 64<<10)
					fmt.Fprintf(bw, "%x\r\n%s\r\n", n, rest[:n])
					rest = rest[n:]
				}
				bw.WriteString("0\r\n\r\n")
			} else {
				fmt.Fprintf(bw, "PUT /kv/big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body))
				bw.Write(body)
			}
			if err := bw.Flush(); err != nil {
				t.Fatalf("sending %d bytes before reading: %v (want the node to read them and answer 413)", len(body), err)
			}
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("reading the response: %v, want 413", err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("got %d %q (%v), want 413", resp.StatusCode, b, err)
			}
			response{status: resp.StatusCode, header: resp.Header, body: b}.jsonError(t)
			if !resp.Close {
				t.Errorf("413 without Connection: close: %v", resp.Header)
			}
			if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
				t.Errorf("after the 413: %q, %v; want a clean close", rest, err)
			}
		})
	}
	if r := tn.get("/kv/big", nil); r.status != http.StatusNotFound {
		t.Fatalf("GET after the refused PUTs = %d %q, want 404", r.status, r.body)
	}
}

// TestOversizedPutOverHTTP2KeepsTheConnection: under HTTP/2 the 413 ends
// only its stream. Connection: close would make net/http send GOAWAY and
// close a connection that peers' RPC and other requests share.
func TestOversizedPutOverHTTP2KeepsTheConnection(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxValueBytes = 1024
	tn := startNode(t, &cfg, nil)
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}

	reused := func(method, path string, body io.Reader, want int) bool {
		t.Helper()
		var got bool
		ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { got = i.Reused },
		})
		req, err := http.NewRequestWithContext(ctx, method, "http://"+tn.Addr()+path, body)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s over h2c: %v", method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != want {
			t.Fatalf("%s %s = %s %d %q, want HTTP/2 %d", method, path, resp.Proto, resp.StatusCode, b, want)
		}
		if want == http.StatusRequestEntityTooLarge {
			response{status: resp.StatusCode, header: resp.Header, body: b}.jsonError(t)
			if v := resp.Header.Get("Connection"); v != "" {
				t.Errorf("HTTP/2 413 carries Connection: %q", v)
			}
		}
		return got
	}

	reused(http.MethodGet, "/health", nil, http.StatusOK)
	big := strings.Repeat("v", 4<<20)
	if !reused(http.MethodPut, "/kv/big", strings.NewReader(big), http.StatusRequestEntityTooLarge) {
		t.Error("PUT with Content-Length over the limit did not reuse the HTTP/2 connection")
	}
	// MultiReader hides the length: the read limit catches it.
	if !reused(http.MethodPut, "/kv/big", io.MultiReader(strings.NewReader(big)), http.StatusRequestEntityTooLarge) {
		t.Error("PUT of unknown length over the limit did not reuse the HTTP/2 connection")
	}
	if !reused(http.MethodPut, "/kv/small", strings.NewReader("v"), http.StatusNoContent) {
		t.Error("after two 413s the HTTP/2 connection is gone, want it kept")
	}
}
