package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// usageError is a mistake in the command line or the environment: exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errHelp means --help was asked for and printed: exit 0.
var errHelp = errors.New("help printed")

// envName is the environment variable that backs a flag: DYNKV_HTTP_ADDR
// for --http-addr.
func envName(flagName string) string {
	return "DYNKV_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// command is one subcommand's flag set plus what SPEC section 2 adds to the
// standard flag package: flags may follow positional arguments, each flag in
// envFlags falls back to its DYNKV_* variable, and --help prints to stdout.
type command struct {
	fs       *flag.FlagSet
	synopsis string          // "put KEY VALUE [flags]"
	about    string          // one paragraph
	envFlags map[string]bool // nil: every flag reads the environment
}

func newCommand(name, synopsis, about string) *command {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &command{fs: fs, synopsis: synopsis, about: about}
}

// readsEnv limits the environment fallback to the named flags. Client
// commands use it so that, say, DYNKV_CONTEXT cannot silently change a put.
func (c *command) readsEnv(names ...string) {
	c.envFlags = map[string]bool{}
	for _, n := range names {
		c.envFlags[n] = true
	}
}

func (c *command) envAllowed(name string) bool { return c.envFlags == nil || c.envFlags[name] }

// parse parses args, interleaving flags and positional arguments ("--" ends
// the flags), then fills every flag that was not given from the environment.
// A flag on the command line beats the environment.
func (c *command) parse(args []string, env func(string) string, stdout io.Writer) ([]string, error) {
	var positional []string
	rest := args
	for {
		if err := c.fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.printHelp(stdout)
				return nil, errHelp
			}
			return nil, usagef("%s: %v (see dynkv %s --help)", c.fs.Name(), err, c.fs.Name())
		}
		consumed := len(rest) - c.fs.NArg()
		left := c.fs.Args()
		if consumed > 0 && rest[consumed-1] == "--" {
			positional = append(positional, left...)
			break
		}
		if len(left) == 0 {
			break
		}
		positional = append(positional, left[0])
		rest = left[1:]
	}
	set := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	c.fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil || set[f.Name] || !c.envAllowed(f.Name) {
			return
		}
		name := envName(f.Name)
		v := env(name)
		if v == "" {
			return
		}
		if err := c.fs.Set(f.Name, v); err != nil {
			envErr = usagef("environment variable %s=%q: %v", name, v, err)
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	return positional, nil
}

// printHelp lists every flag with its default and environment variable, in
// the double-dash form SPEC section 2 uses.
func (c *command) printHelp(w io.Writer) {
	fmt.Fprintf(w, "usage: dynkv %s\n\n", c.synopsis)
	if c.about != "" {
		fmt.Fprintf(w, "%s\n\n", c.about)
	}
	fmt.Fprintln(w, "flags:")
	c.fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		fmt.Fprintln(w, line)
		extra := ""
		if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "false" && f.DefValue != "[]" {
			extra = " (default " + f.DefValue + ")"
			if g, ok := f.Value.(flag.Getter); ok {
				if _, isString := g.Get().(string); isString {
					extra = fmt.Sprintf(" (default %q)", f.DefValue)
				}
			}
		}
		if c.envAllowed(f.Name) {
			extra += " [$" + envName(f.Name) + "]"
		}
		fmt.Fprintf(w, "        %s%s\n", usage, extra)
	})
}

// listFlag is a comma-separated list (--join, --auth-token). Setting it
// replaces the default rather than appending, so an explicit flag or the
// environment wins outright.
type listFlag struct{ items *[]string }

func (l listFlag) String() string {
	if l.items == nil {
		return ""
	}
	return strings.Join(*l.items, ",")
}

func (l listFlag) Set(s string) error {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	*l.items = out
	return nil
}

// byteSize accepts a plain byte count or one with a unit: 1048576, 1MiB,
// 64MB, 512k. Decimal and binary prefixes both mean powers of 1024, which
// is what an operator sizing a disk threshold has in mind.
type byteSize[T int | int64 | uint64] struct{ v *T }

func (b byteSize[T]) String() string {
	if b.v == nil {
		return "0"
	}
	return strconv.FormatUint(uint64(*b.v), 10)
}

func (b byteSize[T]) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	var zero T
	switch any(zero).(type) {
	case int, int64:
		if n > 1<<63-1 || uint64(T(n)) != n {
			return fmt.Errorf("byte size %q is too large", s)
		}
	}
	*b.v = T(n)
	return nil
}

func parseByteSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("byte size %q: want a number such as 1048576 or 1MiB", s)
	}
	n, err := strconv.ParseUint(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("byte size %q: %w", s, err)
	}
	var shift uint
	switch strings.ToLower(strings.TrimSpace(t[i:])) {
	case "", "b":
	case "k", "kb", "kib":
		shift = 10
	case "m", "mb", "mib":
		shift = 20
	case "g", "gb", "gib":
		shift = 30
	case "t", "tb", "tib":
		shift = 40
	default:
		return 0, fmt.Errorf("byte size %q: unknown unit %q (want B, KiB, MiB, GiB or TiB)", s, t[i:])
	}
	if shift > 0 && n > (1<<64-1)>>shift {
		return 0, fmt.Errorf("byte size %q is too large", s)
	}
	return n << shift, nil
}
