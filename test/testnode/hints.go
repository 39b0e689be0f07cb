package testnode

import (
	"fmt"
	"net/http"
)

// WipeHints drops every hint the node holds, through DELETE
// /internal/v1/debug/hints, so that a chaos test can force replicas to
// converge through anti-entropy alone.
func (n *Node) WipeHints() error {
	const path = "/internal/v1/debug/hints"
	r, err := n.Do(Request{Method: http.MethodDelete, Path: path})
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK && r.Status != http.StatusNoContent {
		return fmt.Errorf("node %s: DELETE %s: %s, want 200 or 204", n.id, path, r)
	}
	return nil
}
