package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dynkv/dynkv/client"
)

// FuzzPrintStatus: `dynkv cluster status` decodes whatever the node
// answers into client.ClusterStatus and prints it; no answer may crash
// the CLI, and every member decoded gets its own row of the table.
func FuzzPrintStatus(f *testing.F) {
	f.Add([]byte(`{"node":"n1","n":3,"r":2,"w":2,"partitions":256,"epoch":4,"ring_fingerprint":"ab12",` +
		`"members":[{"id":"n1","state":"alive","gossip_addr":"127.0.0.1:7946","http_addr":"127.0.0.1:8080","ring_share":0.5,` +
		`"target_share":0.5,"hints_pending":3,"handoff":{"sent":5,"total":9,"done":false}}]}`))
	f.Add([]byte(`{"node":"n1","transition":{"target":["n1","n2"],"fingerprint":"cd34","members_done":1,"members_total":2},` +
		`"members":[{"id":"n1","handoff":{"done":true}},{"id":"n2","handoff":{"sent":7}},{"id":"n3"}]}`))
	f.Add([]byte(`{"members":null,"transition":null}`))
	f.Add([]byte(`{"members":[{"ring_share":1e308,"target_share":-1e308}]}`))
	f.Add([]byte(`{"node":"a\nb","members":[{"id":"a\fb","state":"x\ny\tz"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var st client.ClusterStatus
		if err := json.Unmarshal(body, &st); err != nil {
			return // the CLI reports it as an unexpected answer
		}
		var out bytes.Buffer
		printStatus(&out, st)
		text := out.String()
		if !strings.HasPrefix(text, "node ") {
			t.Fatalf("status output does not start with its header line: %q", text)
		}
		// Header, optional transition line, column titles, one row per
		// member; a member's fields may hold newlines themselves (and the
		// table writer ends a line at a form feed too).
		var fieldLines int
		for _, m := range st.Members {
			cells := m.ID + m.State + m.GossipAddr + m.HTTPAddr
			fieldLines += strings.Count(cells, "\n") + strings.Count(cells, "\f")
		}
		if t := st.Transition; t != nil {
			fieldLines += strings.Count(strings.Join(t.Target, " ")+t.Fingerprint, "\n") + 1
		}
		fieldLines += strings.Count(st.Node+st.RingFingerprint, "\n")
		if got, want := strings.Count(text, "\n"), 2+len(st.Members)+fieldLines; got != want {
			t.Fatalf("%d members printed as %d lines, want %d:\n%s", len(st.Members), got, want, text)
		}
	})
}
