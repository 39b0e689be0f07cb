package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/dynkv/dynkv/client"
)

const defaultAddr = "http://127.0.0.1:8080"

// maxStdinValue bounds `put KEY -`: the server's own limit is far lower, so
// this only stops a runaway pipe from exhausting memory.
const maxStdinValue = 256 << 20

// clientFlags are the flags every client command shares.
type clientFlags struct {
	addr    string
	token   string
	db      int
	output  string
	timeout time.Duration
	tlsCA   string
	hc      *http.Client // built by client; close releases its connections
}

// clientEnv lists the flags of client commands that read DYNKV_*: where to
// connect and how, never what to write.
var clientEnv = []string{"addr", "auth-token", "db", "output", "timeout", "tls-ca"}

func (f *clientFlags) register(c *command) {
	c.fs.StringVar(&f.addr, "addr", defaultAddr, "node `URL`; comma-separated for failover")
	c.fs.StringVar(&f.token, "auth-token", "", "bearer `token` (the first one of a comma-separated list)")
	c.fs.IntVar(&f.db, "db", 0, "database `number`")
	c.fs.StringVar(&f.output, "output", "text", "output `format`: text or json")
	c.fs.DurationVar(&f.timeout, "timeout", 30*time.Second, "give up after this long, retries included")
	c.fs.StringVar(&f.tlsCA, "tls-ca", "", "PEM CA bundle `file` to verify an https:// node")
	c.readsEnv(clientEnv...)
}

func (f *clientFlags) check() error {
	if f.output != "text" && f.output != "json" {
		return usagef("--output %q: want text or json", f.output)
	}
	if f.db < 0 {
		return usagef("--db %d: want 0 or more", f.db)
	}
	if f.timeout <= 0 {
		return usagef("--timeout %s: want a positive duration", f.timeout)
	}
	return nil
}

// httpClient builds the transport, trusting --tls-ca when given.
func (f *clientFlags) httpClient(maxConns int) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = maxConns * 2
	tr.MaxIdleConnsPerHost = maxConns
	if f.tlsCA != "" {
		pem, err := os.ReadFile(f.tlsCA)
		if err != nil {
			return nil, usagef("--tls-ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("--tls-ca %s: no PEM certificate found", f.tlsCA)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr}, nil
}

func (f *clientFlags) client(opts ...client.Option) (*client.Client, error) {
	hc, err := f.httpClient(4)
	if err != nil {
		return nil, err
	}
	f.hc = hc
	token, _, _ := strings.Cut(f.token, ",")
	opts = append([]client.Option{client.WithHTTPClient(hc), client.WithToken(strings.TrimSpace(token))}, opts...)
	c, err := client.New(strings.Split(f.addr, ","), opts...)
	if err != nil {
		return nil, usagef("--addr: %v", err)
	}
	return c, nil
}

// close drops the keep-alive connections of the command's one request, so
// nothing outlives run.
func (f *clientFlags) close() {
	if f.hc != nil {
		f.hc.CloseIdleConnections()
	}
}

// parseArgs parses the arguments of client command c, whose flags include
// f's, checks the shared flags and requires exactly want positional
// arguments, which what names in the usage error ("KEY and VALUE").
func (f *clientFlags) parseArgs(c *command, args []string, env func(string) string, stdout io.Writer, want int, what string) ([]string, error) {
	pos, err := c.parse(args, env, stdout)
	if err != nil {
		return nil, err
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	if len(pos) != want {
		name := c.fs.Name()
		return nil, usagef("%s: want %s, got %d arguments (see dynkv %s --help)", name, what, len(pos), name)
	}
	return pos, nil
}

// connect builds the client and a context bounded by --timeout, which
// covers the retries too; done releases both once the request is over.
func (f *clientFlags) connect() (cl *client.Client, ctx context.Context, done func(), err error) {
	cl, err = f.client()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	return cl, ctx, func() { cancel(); f.close() }, nil
}

func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func runPut(args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	var cf clientFlags
	var opts client.PutOptions
	c := newCommand("put", "put KEY VALUE [flags]", `Writes VALUE under KEY ("-" reads VALUE from stdin) and prints the new context,
which a later put or delete can pass with --context to supersede exactly what it covers.
Flags may come before or after the arguments; put "--" before a VALUE that starts with "-".`)
	cf.register(c)
	c.fs.DurationVar(&opts.TTL, "ttl", 0, "expire the value after this long, e.g. 30s")
	c.fs.StringVar(&opts.Context, "context", "", "`context` from an earlier get or put; empty writes blindly")
	c.fs.StringVar(&opts.ContentType, "content-type", "", "content `type` stored with the value")
	c.fs.IntVar(&opts.W, "w", 0, "write quorum for this request (0: the server's default)")
	pos, err := cf.parseArgs(c, args, env, stdout, 2, "KEY and VALUE")
	if err == nil && opts.TTL < 0 {
		err = usagef("put: --ttl %s: want a positive duration", opts.TTL)
	}
	if err != nil {
		return report(stderr, err)
	}
	key, value := pos[0], []byte(pos[1])
	if pos[1] == "-" {
		value, err = io.ReadAll(io.LimitReader(stdin, maxStdinValue+1))
		if err != nil {
			return report(stderr, fmt.Errorf("put: reading the value from stdin: %w", err))
		}
		if len(value) > maxStdinValue {
			return report(stderr, usagef("put: value on stdin is longer than %d bytes", maxStdinValue))
		}
	}
	opts.DB = cf.db
	cl, ctx, done, err := cf.connect()
	if err != nil {
		return report(stderr, err)
	}
	defer done()
	newCtx, err := cl.Put(ctx, key, value, opts)
	if err != nil {
		return report(stderr, fmt.Errorf("put %q: %w", key, err))
	}
	if cf.output == "json" {
		writeJSON(stdout, map[string]any{"key": key, "context": newCtx})
	} else {
		fmt.Fprintln(stdout, newCtx)
	}
	return exitOK
}

// jsonSibling is the --output json form of a value; Value is base64 like
// the server's own 300 body, so binary values survive.
type jsonSibling struct {
	Value        []byte `json:"value"`
	ContentType  string `json:"content_type,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

func runGet(args []string, env func(string) string, stdout, stderr io.Writer) int {
	var cf clientFlags
	var opts client.GetOptions
	c := newCommand("get", "get KEY [flags]", `Prints the value of KEY as raw bytes. When concurrent writes left siblings it
prints each one and then the context that covers them all; a put with that
context resolves them. Exits 1 when the key is absent.`)
	cf.register(c)
	c.fs.IntVar(&opts.R, "r", 0, "read quorum for this request (0: the server's default)")
	pos, err := cf.parseArgs(c, args, env, stdout, 1, "KEY")
	if err != nil {
		return report(stderr, err)
	}
	key := pos[0]
	opts.DB = cf.db
	cl, ctx, done, err := cf.connect()
	if err != nil {
		return report(stderr, err)
	}
	defer done()
	res, err := cl.Get(ctx, key, opts)
	if errors.Is(err, client.ErrNotFound) {
		if cf.output == "json" {
			writeJSON(stdout, map[string]any{"key": key, "found": false, "context": res.Context})
		}
		// The 404's context goes with it: a put --context with it
		// creates the key without overwriting a concurrent create.
		fmt.Fprintf(stderr, "dynkv: get %q: not found (context %s)\n", key, res.Context)
		return exitNotFound
	}
	if err != nil {
		return report(stderr, fmt.Errorf("get %q: %w", key, err))
	}
	if cf.output == "json" {
		sibs := make([]jsonSibling, 0, len(res.Values))
		for _, s := range res.Values {
			js := jsonSibling{Value: s.Value, ContentType: s.ContentType}
			if !s.LastModified.IsZero() {
				js.LastModified = s.LastModified.UTC().Format(time.RFC3339Nano)
			}
			sibs = append(sibs, js)
		}
		writeJSON(stdout, map[string]any{"key": key, "found": true, "context": res.Context, "siblings": sibs})
		return exitOK
	}
	if !res.Conflict() {
		_, _ = stdout.Write(res.Values[0].Value)
		if isTerminal(stdout) {
			// Raw bytes for pipes; a prompt on its own line for people.
			fmt.Fprintln(stdout)
		}
		return exitOK
	}
	for i, s := range res.Values {
		fmt.Fprintf(stdout, "--- sibling %d of %d", i+1, len(res.Values))
		if s.ContentType != "" {
			fmt.Fprintf(stdout, ", %s", s.ContentType)
		}
		if !s.LastModified.IsZero() {
			fmt.Fprintf(stdout, ", modified %s", s.LastModified.UTC().Format(time.RFC3339Nano))
		}
		fmt.Fprintf(stdout, ", %d bytes\n", len(s.Value))
		_, _ = stdout.Write(s.Value)
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "--- context %s\n", res.Context)
	return exitOK
}

func runDelete(args []string, env func(string) string, stdout, stderr io.Writer) int {
	var cf clientFlags
	var opts client.DeleteOptions
	c := newCommand("delete", "delete KEY [flags]", "Deletes KEY by writing a tombstone.")
	cf.register(c)
	c.fs.StringVar(&opts.Context, "context", "", "`context` from an earlier get; empty deletes whatever the node holds")
	c.fs.IntVar(&opts.W, "w", 0, "write quorum for this request (0: the server's default)")
	pos, err := cf.parseArgs(c, args, env, stdout, 1, "KEY")
	if err != nil {
		return report(stderr, err)
	}
	key := pos[0]
	opts.DB = cf.db
	cl, ctx, done, err := cf.connect()
	if err != nil {
		return report(stderr, err)
	}
	defer done()
	if err := cl.Delete(ctx, key, opts); err != nil {
		return report(stderr, fmt.Errorf("delete %q: %w", key, err))
	}
	if cf.output == "json" {
		writeJSON(stdout, map[string]any{"key": key, "deleted": true})
	}
	return exitOK
}
