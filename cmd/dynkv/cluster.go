package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/dynkv/dynkv/client"
)

func runCluster(args []string, env func(string) string, stdout, stderr io.Writer) int {
	var cf clientFlags
	var nodeID string
	c := newCommand("cluster", "cluster status|join ADDR...|leave [--node ID] [flags]",
		`status  prints the node's view of the cluster as JSON
join    asks the node at --addr to join the cluster these gossip addresses belong to
leave   asks the node at --addr to hand its data to the new owners and leave;
        with --node ID it removes that dead member for good instead`)
	cf.register(c)
	c.fs.StringVar(&nodeID, "node", "", "leave: `id` of a dead member to remove")
	pos, err := c.parse(args, env, stdout)
	if err == nil {
		err = cf.check()
	}
	if err == nil && len(pos) == 0 {
		err = usagef("cluster: want status, join or leave (see dynkv cluster --help)")
	}
	if err != nil {
		return report(stderr, err)
	}
	sub, rest := pos[0], pos[1:]
	switch {
	case sub == "status" && len(rest) == 0:
	case sub == "join" && len(rest) > 0:
	case sub == "leave" && len(rest) == 0:
	case sub == "join":
		return report(stderr, usagef("cluster join: want at least one gossip address host:port"))
	case sub == "status" || sub == "leave":
		return report(stderr, usagef("cluster %s: unexpected argument %q", sub, rest[0]))
	default:
		return report(stderr, usagef("cluster: unknown subcommand %q: want status, join or leave", sub))
	}
	if nodeID != "" && sub != "leave" {
		return report(stderr, usagef("cluster %s: --node only applies to leave", sub))
	}
	// Join and leave are about the node addressed; failing over to another
	// would make a different node join or leave.
	cl, err := cf.client(client.WithRetries(1))
	if err != nil {
		return report(stderr, err)
	}
	defer cf.close()
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	var out json.RawMessage
	switch sub {
	case "status":
		out, err = cl.ClusterStatus(ctx)
	case "join":
		out, err = cl.ClusterJoin(ctx, rest)
	case "leave":
		out, err = cl.ClusterLeave(ctx, nodeID)
	}
	if err != nil {
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && apiErr.Status == 404 && routeMissing(apiErr) {
			return report(stderr, fmt.Errorf("cluster %s: %s does not serve the cluster endpoints yet (HTTP 404: %s)", sub, cl.Addrs()[0], apiErr.Message))
		}
		return report(stderr, fmt.Errorf("cluster %s: %w", sub, err))
	}
	var pretty bytes.Buffer
	if len(bytes.TrimSpace(out)) == 0 {
		if cf.output == "json" {
			writeJSON(stdout, map[string]any{"ok": true})
		}
		return exitOK
	}
	if json.Indent(&pretty, out, "", "  ") == nil {
		pretty.WriteByte('\n')
		_, _ = stdout.Write(pretty.Bytes())
		return exitOK
	}
	_, _ = stdout.Write(out)
	return exitOK
}

// routeMissing tells the 404 of a route the server does not have (chi's
// default body, or node's "no such endpoint") from a handler's answer such
// as an unknown --node. Both exit 3; only the message differs.
func routeMissing(e *client.APIError) bool {
	switch e.Message {
	case "", "no such endpoint", "404 page not found", "Not Found":
		return true
	}
	return false
}
