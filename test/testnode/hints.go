package testnode

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// WipeHints drops every hint the node holds, through DELETE
// /internal/v1/debug/hints, so that a chaos test can force replicas to
// converge through anti-entropy alone.
func (n *Node) WipeHints() error {
	_, err := n.WipeHintsCount()
	return err
}

// WipeHintsCount is WipeHints, returning how many hints it dropped. A
// coordinator stores a hint for a dead replica after the write's
// acknowledgement, once the merge to it has failed, so a test that must
// see no hint wipes until a wipe finds none.
func (n *Node) WipeHintsCount() (int, error) {
	const path = "/internal/v1/debug/hints"
	r, err := n.Do(Request{Method: http.MethodDelete, Path: path})
	if err != nil {
		return 0, err
	}
	if r.Status != http.StatusOK && r.Status != http.StatusNoContent {
		return 0, fmt.Errorf("node %s: DELETE %s: %s, want 200 or 204", n.id, path, r)
	}
	var b struct {
		Wiped int `json:"wiped"`
	}
	if r.Status == http.StatusOK {
		if err := json.Unmarshal(r.Body, &b); err != nil {
			return 0, fmt.Errorf("node %s: DELETE %s: body %q: %w", n.id, path, r.Body, err)
		}
	}
	return b.Wiped, nil
}
