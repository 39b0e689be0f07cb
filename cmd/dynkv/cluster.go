package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dynkv/dynkv/client"
)

func runCluster(args []string, env func(string) string, stdout, stderr io.Writer) int {
	var cf clientFlags
	var nodeID string
	c := newCommand("cluster", "cluster status|join ADDR...|leave [--node ID] [flags]",
		`status  prints the node's view of the cluster: a member table, or the raw JSON with --output json
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
	if cf.output == "json" {
		var pretty bytes.Buffer
		if len(bytes.TrimSpace(out)) == 0 {
			writeJSON(stdout, map[string]any{"ok": true})
		} else if json.Indent(&pretty, out, "", "  ") == nil {
			pretty.WriteByte('\n')
			_, _ = stdout.Write(pretty.Bytes())
		} else {
			_, _ = stdout.Write(out)
		}
		return exitOK
	}
	if sub == "leave" {
		var ack struct{ Status, Node string }
		_ = json.Unmarshal(out, &ack)
		switch {
		case nodeID != "":
			fmt.Fprintf(stdout, "removing %s: its replicas are being rebuilt on the new owners\n", nodeID)
		case ack.Node != "":
			fmt.Fprintf(stdout, "%s is leaving: handing its data to the new owners (see dynkv cluster status)\n", ack.Node)
		default:
			fmt.Fprintln(stdout, "leaving: handing data to the new owners (see dynkv cluster status)")
		}
		return exitOK
	}
	var st client.ClusterStatus
	if err := json.Unmarshal(out, &st); err != nil {
		return report(stderr, fmt.Errorf("cluster %s: the node answered a status that is not the expected JSON: %w", sub, err))
	}
	printStatus(stdout, st)
	return exitOK
}

// printStatus writes the status as a header line and a member table.
func printStatus(w io.Writer, st client.ClusterStatus) {
	fmt.Fprintf(w, "node %s  N=%d R=%d W=%d  partitions %d  epoch %d  ring %s  in flight %d\n",
		st.Node, st.N, st.R, st.W, st.Partitions, st.Epoch, st.RingFingerprint, st.Coordinator.InFlight)
	if q := st.Quarantine; q.Total > 0 || q.Held > 0 || q.Failures > 0 {
		fmt.Fprintf(w, "quarantined %d since start (data %d, hints %d, WAL records %d, checkpoints %d; %d failed), %d held in %s\n",
			q.Total, q.Data, q.Hints, q.WALRecords, q.Checkpoints, q.Failures, q.Held, q.Dir)
	}
	if t := st.Transition; t != nil {
		fmt.Fprintf(w, "transition to [%s] (%s): %d of %d members done\n",
			strings.Join(t.Target, " "), t.Fingerprint, t.MembersDone, t.MembersTotal)
	}
	if down := unreachablePeers(st.Coordinator.Peers); down != "" {
		fmt.Fprintf(w, "unreachable peers (calls failing, routed around): %s\n", down)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tGOSSIP\tHTTP\tRING%\tTARGET%\tHINTS\tHANDOFF")
	for _, m := range st.Members {
		handoff := "-"
		switch {
		case m.Handoff.Done:
			handoff = "done"
		case m.Handoff.Total > 0:
			handoff = fmt.Sprintf("%d/%d", m.Handoff.Sent, m.Handoff.Total)
		case m.Handoff.Sent > 0:
			handoff = fmt.Sprintf("%d sent", m.Handoff.Sent)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f\t%.1f\t%d\t%s\n", m.ID, m.State, m.GossipAddr, m.HTTPAddr,
			100*m.RingShare, 100*m.TargetShare, m.HintsPending, handoff)
	}
	_ = tw.Flush()
}

// unreachablePeers lists the peers the coordinator routes around, as
// "n2 since 12:01:02 (3 misses, 1 trips)" (UTC) joined by commas; "" when
// every peer it called is reachable.
func unreachablePeers(peers []client.PeerHealth) string {
	var out []string
	for _, p := range peers {
		if !p.Unreachable {
			continue
		}
		s := p.ID
		if !p.Since.IsZero() {
			s += " since " + p.Since.UTC().Format(time.TimeOnly)
		}
		out = append(out, fmt.Sprintf("%s (%d misses, %d trips)", s, p.Misses, p.Trips))
	}
	return strings.Join(out, ", ")
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
