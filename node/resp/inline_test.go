package resp

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// The cases follow Redis's sdssplitargs (src/sds.c), which Redis's inline
// parser and redis-cli use.
func TestSplitInlineFollowsRedisQuotingRules(t *testing.T) {
	for _, c := range []struct {
		line string
		want []string // nil: unbalanced quotes
	}{
		// The case: a quoted space and a hex escape.
		{`SET "a b" "c\x41d"`, []string{"SET", "a b", "cAd"}},
		{`GET "a b"`, []string{"GET", "a b"}},
		// Double quotes: every escape, and an unknown one standing for
		// its character.
		{`"\n\r\t\b\a\\\"\q"`, []string{"\n\r\t\b\a\\\"q"}},
		{`"\xff\x00\x7A\x7a"`, []string{"\xff\x00zz"}},
		// \x without two hex digits is the escape of x.
		{`"\x4" "\xZZ" "\x"`, []string{"x4", "xZZ", "x"}},
		// Single quotes: only \' is an escape.
		{`'it\'s' 'a\nb' 'a\\b' 'a"b'`, []string{"it's", `a\nb`, `a\\b`, `a"b`}},
		// Empty arguments.
		{`SET k ""`, []string{"SET", "k", ""}},
		{`'' ""`, []string{"", ""}},
		// A quote may open inside a word...
		{`a"b c"`, []string{"ab c"}},
		{`a'b c'`, []string{"ab c"}},
		// ...but a closing quote must be followed by a blank or the end.
		{`"a"b`, nil},
		{`'a'b`, nil},
		{`a"b"c`, nil},
		{`"a""b"`, nil},
		// Unterminated quotes.
		{`"abc`, nil},
		{`'abc`, nil},
		{`"abc\"`, nil},
		{`"\`, nil},
		{`'\'`, nil},
		// Outside quotes a backslash is itself.
		{`\x41 a\"b`, nil}, // the " after a\ opens a quote that never closes
		{`\x41 a\b`, []string{`\x41`, `a\b`}},
		// Blanks: runs of them separate; space, tab, CR and LF end a
		// word, vertical tab and form feed only between words.
		{"  a\t\tb  ", []string{"a", "b"}},
		{"a\rb\nc", []string{"a", "b", "c"}},
		{"\v\fa\v", []string{"a\v"}},
		{"a\vb", []string{"a\vb"}},
		{"\"a\"\v\"b\"\f", []string{"a", "b"}},
		{"", []string{}},
		{" \t ", []string{}},
		// The line ends at a NUL, as the C string Redis splits.
		{"a\x00b c", []string{"a"}},
		{"\"a\x00b\"", nil},
		{"\x00\"", []string{}},
		// Bytes beyond ASCII are themselves.
		{"SET \"ключ\" 'значение'", []string{"SET", "ключ", "значение"}},
	} {
		got, ok := splitInline([]byte(c.line))
		if c.want == nil {
			if ok {
				t.Errorf("splitInline(%q) = %q, want unbalanced quotes", c.line, got)
			}
			continue
		}
		if !ok {
			t.Errorf("splitInline(%q): unbalanced quotes, want %q", c.line, c.want)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("splitInline(%q) = %q, want %q", c.line, got, c.want)
			continue
		}
		for i := range got {
			if string(got[i]) != c.want[i] {
				t.Errorf("splitInline(%q) = %q, want %q", c.line, got, c.want)
				break
			}
		}
	}
}

func TestSplitInlineArgumentsDoNotShareCapacity(t *testing.T) {
	args, ok := splitInline([]byte(`a b c`))
	if !ok || len(args) != 3 {
		t.Fatalf("splitInline = %q, %v", args, ok)
	}
	// An append to one argument must not overwrite the next.
	_ = append(args[0], 'X')
	if string(args[1]) != "b" {
		t.Fatalf("appending to the first argument changed the second to %q", args[1])
	}
}

func TestInlineCommandsThroughTheReader(t *testing.T) {
	in := "SET \"a b\" \"c\\x41d\"\r\nGET 'a b'\n\"unbalanced\r\n"
	rd := newRESPReader(strings.NewReader(in), 1<<10, 1<<20)
	for _, want := range [][]string{{"SET", "a b", "cAd"}, {"GET", "a b"}} {
		args, err := rd.readCommand()
		if err != nil || fmt.Sprintf("%q", args) != fmt.Sprintf("%q", want) {
			t.Fatalf("readCommand = %q, %v; want %q", args, err, want)
		}
	}
	_, err := rd.readCommand()
	var perr protocolError
	if !errors.As(err, &perr) || string(perr) != "unbalanced quotes in request" {
		t.Fatalf("unbalanced line: %v, want the protocol error \"unbalanced quotes in request\"", err)
	}
}

// FuzzSplitInline: the splitter never panics, its counting pass agrees with
// its filling pass, and any arguments quoted back (every byte as \xHH in
// double quotes) split into themselves.
func FuzzSplitInline(f *testing.F) {
	for _, s := range []string{`SET "a b" "c\x41d"`, `'it\'s' "\n\q"`, `a"b c"`, `"a"b`, "a\x00b", "\v\f a", `"\x4"`, `''`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var count inlineSplitter
		okCount := count.split(line)
		args, ok := splitInline(line)
		if ok != okCount {
			t.Fatalf("counting says %v, splitting %v", okCount, ok)
		}
		if !ok {
			return
		}
		size, longest := 0, 0
		for _, a := range args {
			size += len(a)
			longest = max(longest, len(a))
		}
		if count.n != len(args) || count.size != size || count.longest != longest {
			t.Fatalf("counted %d args, %d bytes, longest %d; split %d, %d, %d", count.n, count.size, count.longest, len(args), size, longest)
		}
		if size > len(line) {
			t.Fatalf("%d bytes of arguments from a %d-byte line", size, len(line))
		}
		var quoted bytes.Buffer
		for i, a := range args {
			if i > 0 {
				quoted.WriteByte(' ')
			}
			quoted.WriteByte('"')
			for _, c := range a {
				fmt.Fprintf(&quoted, "\\x%02x", c)
			}
			quoted.WriteByte('"')
		}
		back, ok := splitInline(quoted.Bytes())
		if !ok || fmt.Sprintf("%q", back) != fmt.Sprintf("%q", args) {
			t.Fatalf("%q quoted back as %q splits into %q (%v)", args, quoted.Bytes(), back, ok)
		}
	})
}
