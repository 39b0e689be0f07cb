package testnode

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ContextHeader carries a causal context (SPEC section 3).
const ContextHeader = "X-Context"

// Request is one HTTP call to a node; Path includes any query.
type Request struct {
	Method string
	Path   string
	Body   []byte
	Header http.Header
}

// Response is what a node answered, in full.
type Response struct {
	Status  int
	Header  http.Header
	Body    []byte
	Context string // the X-Context header
}

// String is a short description for failure messages.
func (r Response) String() string {
	body := string(bytes.ToValidUTF8(r.Body, []byte("?")))
	if len(body) > 300 {
		body = body[:300] + "..."
	}
	return fmt.Sprintf("%d %q", r.Status, body)
}

// Do sends r to the node. A transport error (refused, reset, timeout) is
// an error; any HTTP status is a Response.
func (n *Node) Do(r Request) (Response, error) {
	return n.DoContext(context.Background(), r)
}

// KV names a key and its per-request options.
type KV struct {
	DB      int    // database; 0 uses /kv/...
	Context string // X-Context to send; empty sends none (a blind write)
	R, W    int    // r and w query parameters; 0 leaves them out
	TTL     time.Duration
}

func (o KV) path(key string) string {
	p := "/kv/" + url.PathEscape(key)
	if o.DB != 0 {
		p = "/db/" + strconv.Itoa(o.DB) + p
	}
	q := url.Values{}
	if o.R > 0 {
		q.Set("r", strconv.Itoa(o.R))
	}
	if o.W > 0 {
		q.Set("w", strconv.Itoa(o.W))
	}
	if o.TTL > 0 {
		q.Set("ttl", o.TTL.String())
	}
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	return p
}

func (o KV) header() http.Header {
	h := http.Header{}
	if o.Context != "" {
		h.Set(ContextHeader, o.Context)
	}
	return h
}

// Put writes value to key (204 on success).
func (n *Node) Put(key string, value []byte, o KV) (Response, error) {
	h := o.header()
	h.Set("Content-Type", "application/octet-stream")
	return n.Do(Request{Method: http.MethodPut, Path: o.path(key), Body: value, Header: h})
}

// Get reads key (200 one value, 300 siblings, 404 absent).
func (n *Node) Get(key string, o KV) (Response, error) {
	return n.Do(Request{Method: http.MethodGet, Path: o.path(key), Header: o.header()})
}

// Delete deletes key (204 on success).
func (n *Node) Delete(key string, o KV) (Response, error) {
	return n.Do(Request{Method: http.MethodDelete, Path: o.path(key), Header: o.header()})
}

// Sibling is one value of a 300 answer.
type Sibling struct {
	Value        []byte `json:"value"` // base64 in JSON; encoding/json decodes it
	ContentType  string `json:"content_type"`
	LastModified string `json:"last_modified"`
}

// Values returns the values a read returned: one for a 200, the siblings'
// for a 300 (in the server's order), none for anything else.
func (r Response) Values() ([][]byte, error) {
	switch r.Status {
	case http.StatusOK:
		return [][]byte{r.Body}, nil
	case http.StatusMultipleChoices:
		var doc struct {
			Siblings []Sibling `json:"siblings"`
		}
		if err := json.Unmarshal(r.Body, &doc); err != nil {
			return nil, fmt.Errorf("decoding a 300 body %q: %w", r.Body, err)
		}
		vals := make([][]byte, len(doc.Siblings))
		for i, s := range doc.Siblings {
			vals[i] = s.Value
		}
		return vals, nil
	}
	return nil, nil
}

// QuorumError is the body of a 503 (SPEC section 3).
type QuorumError struct {
	Error  string `json:"error"`
	Needed *int   `json:"needed"`
	Acked  *int   `json:"acked"`
}

// Quorum decodes a 503 body, failing unless it carries error, needed and
// acked.
func (r Response) Quorum() (QuorumError, error) {
	var q QuorumError
	if r.Status != http.StatusServiceUnavailable {
		return q, fmt.Errorf("status %d, want 503", r.Status)
	}
	if err := json.Unmarshal(r.Body, &q); err != nil {
		return q, fmt.Errorf("decoding a 503 body %q: %w", r.Body, err)
	}
	if q.Error == "" || q.Needed == nil || q.Acked == nil {
		return q, fmt.Errorf("503 body %q lacks error, needed or acked", r.Body)
	}
	return q, nil
}

// LocalSet is this node's own copy of a key, from the internal debug read.
type LocalSet struct {
	Found    bool `json:"found"`
	Siblings []struct {
		Value     []byte `json:"value"`
		Actor     string `json:"actor"`
		Counter   uint64 `json:"counter"`
		Tombstone bool   `json:"tombstone"`
	} `json:"siblings"`
	Context string `json:"context"`
}

// Values are the values of the live (not tombstone) siblings.
func (l LocalSet) Values() [][]byte {
	var vals [][]byte
	for _, s := range l.Siblings {
		if !s.Tombstone {
			vals = append(vals, s.Value)
		}
	}
	return vals
}

// LocalGet reads the node's local copy of key in db, bypassing the
// coordinator, through GET /internal/v1/debug/local/{db}/{key}.
func (n *Node) LocalGet(db int, key string) (LocalSet, error) {
	path := "/internal/v1/debug/local/" + strconv.Itoa(db) + "/" + url.PathEscape(key)
	r, err := n.Do(Request{Method: http.MethodGet, Path: path})
	if err != nil {
		return LocalSet{}, err
	}
	var l LocalSet
	switch r.Status {
	case http.StatusOK:
	case http.StatusNotFound:
		// Either form of "not held" is accepted: 404 or found=false.
		if len(bytes.TrimSpace(r.Body)) == 0 || json.Unmarshal(r.Body, &l) != nil || !l.Found {
			return LocalSet{}, nil
		}
	default:
		return LocalSet{}, fmt.Errorf("node %s: GET %s: %s, want 200 or 404", n.id, path, r)
	}
	if err := json.Unmarshal(r.Body, &l); err != nil {
		return LocalSet{}, fmt.Errorf("node %s: GET %s: decoding %q: %w", n.id, path, r.Body, err)
	}
	return l, nil
}

// Join asks the node to join the cluster of the gossip addresses.
func (n *Node) Join(gossipAddrs ...string) (Response, error) {
	body, _ := json.Marshal(map[string][]string{"addrs": gossipAddrs})
	return n.Do(Request{Method: http.MethodPost, Path: "/cluster/join", Body: body,
		Header: http.Header{"Content-Type": {"application/json"}}})
}

// Leave asks the node to hand off its data and leave (202).
func (n *Node) Leave() (Response, error) {
	return n.Do(Request{Method: http.MethodPost, Path: "/cluster/leave"})
}

// Remove asks the node to remove the dead member id for good (202).
func (n *Node) Remove(id string) (Response, error) {
	return n.Do(Request{Method: http.MethodPost, Path: "/cluster/leave?node=" + url.QueryEscape(id)})
}

// Status is the node's GET /cluster/status.
func (n *Node) Status() (Status, error) {
	r, err := n.Do(Request{Method: http.MethodGet, Path: "/cluster/status"})
	if err != nil {
		return Status{}, err
	}
	if r.Status != http.StatusOK {
		return Status{}, fmt.Errorf("node %s: GET /cluster/status: %s, want 200", n.id, r)
	}
	var s Status
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	if err := dec.Decode(&s); err != nil {
		return Status{}, fmt.Errorf("node %s: GET /cluster/status: decoding %q: %w", n.id, r.Body, err)
	}
	s.Raw = r.Body
	return s, nil
}
