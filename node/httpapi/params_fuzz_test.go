package httpapi

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseDatabase: the {n} of /db/{n}/kv/ is accepted exactly when it is
// plain decimal digits without a leading zero naming one of the databases
// (one spelling per database: /db/01 is not /db/1).
func FuzzParseDatabase(f *testing.F) {
	for _, s := range []string{"0", "15", "16", "-1", "+1", "01", "", " 1", "1 ", "99999999999999999999", "0x1"} {
		f.Add(s, 16)
	}
	f.Fuzz(func(t *testing.T, s string, databases int) {
		if databases < 1 || databases > 256 {
			return // Config.Validate keeps --databases in 1..256
		}
		n, err := ParseDatabase(s, databases)
		digits := s != "" && strings.Trim(s, "0123456789") == "" && (s == "0" || s[0] != '0')
		v, convErr := strconv.Atoi(s)
		want := digits && convErr == nil && v < databases
		if (err == nil) != want {
			t.Fatalf("ParseDatabase(%q, %d) = %d, %v; want accepted=%v", s, databases, n, err, want)
		}
		if err == nil && n != v {
			t.Fatalf("ParseDatabase(%q) = %d", s, n)
		}
	})
}

// FuzzParseQuorum: an r or w query is one, quorum, all or a positive
// decimal count, and what it yields is a usable quorum: at least 1, at most
// N and at most the member count.
func FuzzParseQuorum(f *testing.F) {
	for _, s := range []string{"one", "quorum", "all", "1", "2", "3", "0", "-1", "+2", "ONE", "1.0", "", "99999999999999999999"} {
		f.Add(s, 3, 3)
	}
	f.Add("all", 5, 2)
	f.Fuzz(func(t *testing.T, s string, n, members int) {
		if n < 1 || n > 255 || members < 1 {
			return // N comes from the validated config, members from the ring
		}
		q, err := parseQuorum("w", s, n, members)
		if err != nil {
			return
		}
		if q < 1 || q > n || q > members {
			t.Fatalf("parseQuorum(%q, n=%d, members=%d) = %d, outside 1..min(n, members)", s, n, members, q)
		}
		switch s {
		case "one", "quorum", "all":
		default:
			if s == "" || strings.Trim(s, "0123456789") != "" {
				t.Fatalf("parseQuorum accepted %q", s)
			}
		}
	})
}
