package client

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// wireSibling is one entry of a 300 Multiple Choices body (SPEC section 3).
type wireSibling struct {
	Value        string `json:"value"`
	ContentType  string `json:"content_type"`
	LastModified string `json:"last_modified"`
}

// decodeSiblings parses {"siblings":[...]}. Values are standard base64 (what
// encoding/json writes for []byte); unpadded and URL-safe forms are accepted
// too so a server in another language is not held to Go's choice.
func decodeSiblings(body []byte) ([]Sibling, error) {
	var doc struct {
		Siblings []wireSibling `json:"siblings"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decode siblings: %w", err)
	}
	if len(doc.Siblings) == 0 {
		return nil, errors.New("decode siblings: none listed")
	}
	out := make([]Sibling, 0, len(doc.Siblings))
	for i, w := range doc.Siblings {
		v, err := decodeBase64(w.Value)
		if err != nil {
			return nil, fmt.Errorf("decode siblings: sibling %d value: %w", i, err)
		}
		s := Sibling{Value: v, ContentType: w.ContentType}
		if w.LastModified != "" {
			t, err := time.Parse(time.RFC3339Nano, w.LastModified)
			if err != nil {
				return nil, fmt.Errorf("decode siblings: sibling %d last_modified: %w", i, err)
			}
			s.LastModified = t
		}
		out = append(out, s)
	}
	return out, nil
}

func decodeBase64(s string) ([]byte, error) {
	var firstErr error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err == nil {
			return b, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}
