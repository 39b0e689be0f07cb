package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/dynkv/dynkv/client"
)

// Exit statuses of SPEC section 2.
const (
	exitOK       = 0
	exitNotFound = 1
	exitUsage    = 2
	exitFailure  = 3
)

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}

const topUsage = `usage: dynkv <command> [arguments] [flags]

commands:
  server                       run a node
  put KEY VALUE                write a value (VALUE "-" reads stdin); prints the new context
  get KEY                      read a value; with siblings prints each and the context
  delete KEY                   delete a key
  cluster status               show this node's view of the cluster
  cluster join ADDR...         join the cluster these gossip addresses belong to
  cluster leave [--node ID]    hand off data and leave, or remove a dead member
  bench                        generate load and report throughput and latency
  health [--ready]             exit 0 when the node at --addr is alive (or ready)
  version                      print the version
  help                         print this help

Run "dynkv <command> --help" for a command's flags.
Exit status: 0 ok, 1 not found, 2 usage error, 3 server, quorum or connection error.
`

// run is the whole command: it returns the exit status instead of exiting
// so that tests can call it.
func run(args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "server":
		ctx, stop := interruptContext()
		defer stop()
		return runServer(ctx, rest, env, stdout, stderr, nil)
	case "put":
		return runPut(rest, env, stdin, stdout, stderr)
	case "get":
		return runGet(rest, env, stdout, stderr)
	case "delete", "del":
		return runDelete(rest, env, stdout, stderr)
	case "cluster":
		return runCluster(rest, env, stdout, stderr)
	case "health":
		return runHealth(rest, env, stdout, stderr)
	case "bench":
		ctx, stop := interruptContext()
		defer stop()
		return runBench(ctx, rest, env, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "dynkv %s %s %s/%s\n", buildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "--help", "-h", "-help":
		if len(rest) > 0 && rest[0] != "help" {
			return run([]string{rest[0], "--help"}, env, stdin, stdout, stderr)
		}
		fmt.Fprint(stdout, topUsage)
		return exitOK
	default:
		return report(stderr, usagef("unknown command %q (run dynkv help)", cmd))
	}
}

// interruptContext is done at the first SIGINT or SIGTERM. It then stops
// catching them, so a second Ctrl-C kills a shutdown that hangs.
func interruptContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		// Ends when a signal arrives or when the caller's stop cancels ctx.
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

// report prints err as one line on stderr and returns its exit status.
func report(stderr io.Writer, err error) int {
	if errors.Is(err, errHelp) {
		return exitOK
	}
	fmt.Fprintf(stderr, "dynkv: %s\n", oneLine(err.Error()))
	return exitCode(err)
}

// exitCode maps an error to SPEC section 2's exit status in one place.
func exitCode(err error) int {
	var ue *usageError
	var apiErr *client.APIError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), errors.Is(err, client.ErrEmptyKey):
		return exitUsage
	case errors.Is(err, client.ErrNotFound):
		return exitNotFound
	case errors.As(err, &apiErr):
		// The server said the request itself is malformed or too large:
		// retrying cannot help, the user must change it.
		if apiErr.Status == 400 || apiErr.Status == 413 {
			return exitUsage
		}
		return exitFailure
	default:
		return exitFailure
	}
}
