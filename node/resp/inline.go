package resp

import "bytes"

// inlineSplitter splits an inline command (a line of words, as typed into
// telnet) with the rules of Redis's sdssplitargs, which redis-cli and
// Redis's own inline parser use:
//
//   - arguments are separated by spaces, tabs, CR and LF (and runs of
//     blanks, vertical tabs and form feeds between arguments);
//   - "double quotes" take the escapes \n \r \t \b \a \\ \" and \xHH (two
//     hex digits, either case); any other backslash pair stands for the
//     character after the backslash;
//   - 'single quotes' take only \' as an escape; every other byte, a
//     backslash included, stands for itself;
//   - a quote may open in the middle of a word (a"b c" is the one argument
//     "ab c"), but a closing quote must be followed by a blank or the end
//     of the line;
//   - an unterminated quote, or a closing quote followed by anything else,
//     makes the whole line invalid ("unbalanced quotes in request");
//   - the line ends at a NUL byte, as the C string Redis splits does: the
//     rest is ignored (inside quotes it leaves them unbalanced).
//
// It runs twice over a line: once counting (n, size, longest), so that
// bounds apply before anything is allocated, and once with fill set,
// appending every argument's bytes to buf and the arguments (slices of
// buf) to args.
type inlineSplitter struct {
	fill bool
	buf  []byte
	args [][]byte

	n, size, longest int // arguments, their bytes, the longest's bytes
	cur, start       int // bytes of the argument being split, its start in buf
}

func (s *inlineSplitter) add(c byte) {
	s.cur++
	if s.fill {
		s.buf = append(s.buf, c)
	}
}

func (s *inlineSplitter) end() {
	s.n++
	s.size += s.cur
	s.longest = max(s.longest, s.cur)
	if s.fill {
		// A full slice expression: appending to one argument must not
		// overwrite the next.
		s.args = append(s.args, s.buf[s.start:len(s.buf):len(s.buf)])
		s.start = len(s.buf)
	}
	s.cur = 0
}

// split splits line (without its line ending) and reports false when its
// quotes are unbalanced.
func (s *inlineSplitter) split(line []byte) bool {
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	// at is the byte at i, or NUL past the end, as in a C string.
	at := func(i int) byte {
		if i < len(line) {
			return line[i]
		}
		return 0
	}
	p := 0
	for {
		for p < len(line) && isCSpace(line[p]) {
			p++
		}
		if p >= len(line) {
			return true
		}
		inDouble, inSingle := false, false
		for done := false; !done; {
			c := at(p)
			switch {
			case inDouble:
				switch {
				case c == '\\' && at(p+1) == 'x' && isHexDigit(at(p+2)) && isHexDigit(at(p+3)):
					s.add(hexValue(at(p+2))<<4 | hexValue(at(p+3)))
					p += 3
				case c == '\\' && at(p+1) != 0:
					p++
					switch e := at(p); e {
					case 'n':
						s.add('\n')
					case 'r':
						s.add('\r')
					case 't':
						s.add('\t')
					case 'b':
						s.add('\b')
					case 'a':
						s.add('\a')
					default:
						s.add(e)
					}
				case c == '"':
					if next := at(p + 1); next != 0 && !isCSpace(next) {
						return false
					}
					done = true
				case c == 0:
					return false
				default:
					s.add(c)
				}
			case inSingle:
				switch {
				case c == '\\' && at(p+1) == '\'':
					p++
					s.add('\'')
				case c == '\'':
					if next := at(p + 1); next != 0 && !isCSpace(next) {
						return false
					}
					done = true
				case c == 0:
					return false
				default:
					s.add(c)
				}
			default:
				switch c {
				case ' ', '\n', '\r', '\t', 0:
					done = true
				case '"':
					inDouble = true
				case '\'':
					inSingle = true
				default:
					s.add(c)
				}
			}
			if p < len(line) {
				p++
			}
		}
		s.end()
	}
}

// splitInline is the arguments of an inline command line (without its line
// ending), split as Redis splits them; ok is false when its quotes are
// unbalanced.
func splitInline(line []byte) (args [][]byte, ok bool) {
	var count inlineSplitter
	if !count.split(line) {
		return nil, false
	}
	fill := inlineSplitter{fill: true, buf: make([]byte, 0, count.size), args: make([][]byte, 0, count.n)}
	fill.split(line)
	return fill.args, true
}

// isCSpace is C's isspace in the C locale.
func isCSpace(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hexValue(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
