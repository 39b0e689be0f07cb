package node

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dynkv/dynkv/membership"
	"github.com/dynkv/dynkv/node/metrics"
	"github.com/dynkv/dynkv/store"
)

// nodeCollector turns the counters the node's packages already keep into
// metrics at scrape time, so that serving requests pays nothing for them.
type nodeCollector struct{ n *Node }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	// Coordinator.
	descReads              = desc("dynkv_coordinator_reads_total", "Reads this node coordinated.")
	descWrites             = desc("dynkv_coordinator_writes_total", "Writes (puts and deletes) received by this node's coordinator.")
	descForwards           = desc("dynkv_coordinator_forwards_total", "Writes forwarded to a replica of the key to coordinate.")
	descQuorumFailures     = desc("dynkv_quorum_failures_total", "Reads and writes answered 503 because too few replicas acknowledged.")
	descReadRepairs        = desc("dynkv_read_repairs_total", "Read-repair merges sent to replicas that answered a stale value.")
	descReadRepairFailures = desc("dynkv_read_repair_failures_total", "Read-repair merges that failed.")
	descHinted             = desc("dynkv_hints_stored_total", "Replica writes this node's coordinator had stored as hints on a fallback (sloppy quorum).")
	descHintFailures       = desc("dynkv_hint_store_failures_total", "Hints a fallback failed to store.")
	descCoveredBlind       = desc("dynkv_coordinator_covered_blind_writes_total", "Blind writes acknowledged on covering merges, without reading the key's context from the replicas first.")
	descCoordInFlight      = desc("dynkv_coordinator_in_flight", "Reads and writes the coordinator is serving plus the work they left running after their answer (merges beyond W, answers beyond R, read repair).")
	descCoverFallbacks     = desc("dynkv_coordinator_cover_fallbacks_total", "Blind writes fewer than W replicas took covering (one had seen a write this coordinator had not), so they read the key's context and were written again.")
	descContextsAhead      = desc("dynkv_coordinator_contexts_ahead_total", "Writes whose client context covered writes this coordinator had not seen, so it read the replicas' contexts to clamp it.")
	descCoordHedges        = desc("dynkv_coordinator_hedges_total", "Calls the coordinator started around a peer that ran past its per-call deadline or was unreachable: hints for a write's share, covering writes sent the gather way, reads and context reads completed without it.")

	// Peer health: each peer the coordinator has called, as its calls see it.
	descPeerUnreachable = desc("dynkv_peer_unreachable", "1 while the peer's last calls all failed or ran late, so the coordinator routes around it (even if gossip says it is alive).", "peer")
	descPeerTrips       = desc("dynkv_peer_breaker_trips_total", "Times the peer became unreachable since this node started.", "peer")
	descPeerP99         = desc("dynkv_peer_latency_p99_seconds", "p99 latency of the peer's recent answers (0 until enough).", "peer")
	descPeerHedgeAfter  = desc("dynkv_peer_hedge_after_seconds", "Per-call deadline for the peer, derived from its p99, after which the coordinator hedges around it (0 while unreachable).", "peer")

	// Hinted handoff: hints this node holds for other owners.
	descHintsPending   = desc("dynkv_hints_pending", "Hints this node holds, by the owner they are for.", "owner")
	descHintsOldest    = desc("dynkv_hints_oldest_age_seconds", "Age of the oldest hint held for each owner.", "owner")
	descHintsDelivered = desc("dynkv_hints_delivered_total", "Hints handed to their owner and dropped here.")
	descHintsFailed    = desc("dynkv_hint_delivery_failures_total", "Hint delivery attempts that failed (each backs off).")

	// Active anti-entropy.
	descAAEReady        = desc("dynkv_aae_trees_ready", "1 once this node's anti-entropy hash trees are built.")
	descAAETreeKeys     = desc("dynkv_aae_tree_keys", "Keys in this node's hash trees.")
	descAAERounds       = desc("dynkv_aae_rounds_total", "Anti-entropy rounds run.")
	descAAEExchanges    = desc("dynkv_aae_exchanges_total", "Hash-tree comparisons with one peer.")
	descAAEDiffering    = desc("dynkv_aae_exchanges_differing_total", "Exchanges whose trees differed.")
	descAAEKeys         = desc("dynkv_aae_keys_exchanged_total", "Keys repaired by anti-entropy, by direction (pulled here, pushed to a peer).", "direction")
	descAAEErrors       = desc("dynkv_aae_errors_total", "Anti-entropy exchanges that failed.")
	descAAELastExchange = desc("dynkv_aae_last_exchange_timestamp_seconds", "Unix time of the last completed exchange.")

	// Store and WAL.
	descKeysWritten    = desc("dynkv_store_keys_written_total", "Local puts and merges that changed a key.")
	descReclaimed      = desc("dynkv_store_reclaimed_keys_total", "Expired keys and old tombstones dropped by the reclaimer.")
	descBuried         = desc("dynkv_store_buried_keys_total", "Keys whose expired values the reclaimer turned into tombstones.")
	descReplayed       = desc("dynkv_store_replayed_records", "WAL records replayed into LevelDB at the last start.")
	descPendingRecords = desc("dynkv_store_pending_records", "WAL-durable records LevelDB has not absorbed yet.")
	descCheckpointLSN  = desc("dynkv_store_checkpoint_lsn", "LSN up to which every WAL record is durably in LevelDB.")
	descReopens        = desc("dynkv_store_leveldb_reopens_total", "LevelDB reopens after failed applies (I/O errors).")
	descQuarantined    = desc("dynkv_store_quarantined_records_total", "Damaged stored records moved aside into the data directory's quarantine folder, by kind (data, hint, wal, checkpoint).", "kind")
	descQuarantineFail = desc("dynkv_store_quarantine_failures_total", "Attempts to move a damaged stored record aside that failed (the record stays and is skipped).")
	descQuarantineHeld = desc("dynkv_store_quarantine_held_records", "Records kept in the quarantine folder, from every run, until an operator removes them.")
	descWALAppends     = desc("dynkv_wal_appends_total", "WAL records acknowledged.")
	descWALBatches     = desc("dynkv_wal_batches_total", "WAL group-commit batches written.")
	descWALSyncs       = desc("dynkv_wal_syncs_total", "WAL fsyncs.")
	descWALBytes       = desc("dynkv_wal_bytes_total", "WAL bytes written, framing included.")
	descWALSegments    = desc("dynkv_wal_segments", "WAL segment files on disk.")

	// LevelDB, per level.
	descLDBTables  = desc("dynkv_leveldb_tables", "LevelDB table files per level.", "level")
	descLDBSize    = desc("dynkv_leveldb_size_bytes", "LevelDB table bytes per level.", "level")
	descLDBCompact = desc("dynkv_leveldb_compaction_seconds_total", "Time LevelDB spent compacting into each level.", "level")
	descLDBRead    = desc("dynkv_leveldb_compaction_read_bytes_total", "Bytes LevelDB compactions read, per level.", "level")
	descLDBWrite   = desc("dynkv_leveldb_compaction_write_bytes_total", "Bytes LevelDB compactions wrote, per level.", "level")

	// Ownership handoff.
	descHandoffPasses   = desc("dynkv_handoff_passes_total", "Ownership handoff and stray sweep passes completed.")
	descHandoffFailures = desc("dynkv_handoff_failures_total", "Ownership handoff passes that failed (retried).")
	descHandoffKeys     = desc("dynkv_handoff_keys_sent_total", "Key copies sent to new owners and acknowledged.")
	descHandoffBytes    = desc("dynkv_handoff_bytes_sent_total", "Encoded bytes of those copies.")
	descHandoffDropped  = desc("dynkv_handoff_keys_dropped_total", "Stray keys dropped after every owner acknowledged them.")

	// Node-to-node RPC (replication/rpc/transport and the HTTP/2 RPC).
	descRPCCalls             = desc("dynkv_rpc_calls_total", "Node-to-node calls by call (get, merge, merge-batch, coordinate, hint, aae-tree, aae-keys, aae-roots), side (sent: attempts this node made, retries included; served: calls its handlers ran) and way (transport, or http2 to and from nodes of older versions).", "call", "side", "via")
	descRPCConns             = desc("dynkv_rpc_connections", "Open node-to-node transport connections: to peers (side client) and from peers (side server).", "side")
	descRPCDials             = desc("dynkv_rpc_dials_total", "Node-to-node transport connections opened to peers (upgrade and handshake done).")
	descRPCDialFailures      = desc("dynkv_rpc_dial_failures_total", "Node-to-node transport dials, upgrades or handshakes that failed.")
	descRPCHTTP2Peers        = desc("dynkv_rpc_http2_peers", "Peers this node calls over HTTP/2 because they answered the transport's upgrade with 404 (nodes of older versions).")
	descRPCUpgradesRefused   = desc("dynkv_rpc_upgrades_refused_total", "Transport upgrade requests refused: no client certificate from --tls-ca or no valid bearer token.")
	descRPCHandshakeFailures = desc("dynkv_rpc_handshake_failures_total", "Upgraded transport connections whose handshake failed or was refused (another --gossip-key, or none).")
	descRPCCallsRefused      = desc("dynkv_rpc_calls_refused_total", "Node-to-node calls refused unrun: beyond --rpc-max-calls on a connection, or while shutting down.")

	// Ring and membership.
	descReady      = desc("dynkv_ready", "1 when the node answers 200 on /ready.")
	descRingShare  = desc("dynkv_ring_share", "Fraction of the committed ring's partitions this node owns (primary).")
	descRingEpoch  = desc("dynkv_ring_epoch", "Epoch of the committed ring.")
	descRingSize   = desc("dynkv_ring_members", "Members of the committed ring.")
	descPending    = desc("dynkv_ring_transition_pending", "1 while a ring change is pending (handoff in progress).")
	descMembers    = desc("dynkv_members", "Members known to this node, by ring status.", "status")
	descLiveness   = desc("dynkv_members_liveness", "Members other than this node, by failure-detector liveness.", "liveness")
	descPartitions = desc("dynkv_ring_partitions", "Partitions of the ring.")
)

var allStatuses = []membership.Status{
	membership.StatusJoining, membership.StatusValid, membership.StatusLeaving,
	membership.StatusLeft, membership.StatusRemoved,
}

// Describe sends nothing: the collector is unchecked, because the cluster
// metrics only exist once the node has started.
func (c *nodeCollector) Describe(chan<- *prometheus.Desc) {}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}

	st := n.store.Stats()
	counter(descKeysWritten, st.KeysWritten)
	counter(descReclaimed, st.ReclaimedKeys)
	counter(descBuried, st.BuriedKeys)
	gauge(descReplayed, float64(st.ReplayedRecords))
	gauge(descPendingRecords, float64(st.PendingRecords))
	gauge(descCheckpointLSN, float64(st.CheckpointLSN))
	counter(descReopens, st.LevelDBReopens)
	q := st.Quarantine
	counter(descQuarantined, q.Data, store.QuarantineData)
	counter(descQuarantined, q.Hints, store.QuarantineHint)
	counter(descQuarantined, q.WALRecords, store.QuarantineWAL)
	counter(descQuarantined, q.Checkpoints, store.QuarantineCheckpoint)
	counter(descQuarantineFail, q.Failures)
	gauge(descQuarantineHeld, float64(q.Held))
	counter(descWALAppends, st.WAL.Appends)
	counter(descWALBatches, st.WAL.Batches)
	counter(descWALSyncs, st.WAL.Syncs)
	counter(descWALBytes, st.WAL.Bytes)
	gauge(descWALSegments, float64(st.WAL.Segments))
	for _, l := range metrics.ParseLevelDBStats(st.LevelDB) {
		lv := strconv.Itoa(l.Level)
		gauge(descLDBTables, float64(l.Tables), lv)
		gauge(descLDBSize, l.SizeBytes, lv)
		ch <- prometheus.MustNewConstMetric(descLDBCompact, prometheus.CounterValue, l.CompactSecs, lv)
		ch <- prometheus.MustNewConstMetric(descLDBRead, prometheus.CounterValue, l.ReadBytes, lv)
		ch <- prometheus.MustNewConstMetric(descLDBWrite, prometheus.CounterValue, l.WriteBytes, lv)
	}

	ready := 0.0
	cl := n.cluster.Load()
	if cl != nil && n.state.Load() == stateReady && cl.members.Ready() {
		ready = 1
	}
	gauge(descReady, ready)
	if cl == nil {
		return
	}

	cs := cl.coord.Stats()
	counter(descReads, cs.Reads)
	counter(descWrites, cs.Writes)
	counter(descForwards, cs.Forwards)
	counter(descQuorumFailures, cs.QuorumFailures)
	counter(descReadRepairs, cs.ReadRepairs)
	counter(descReadRepairFailures, cs.ReadRepairFailures)
	counter(descHinted, cs.Hinted)
	counter(descHintFailures, cs.HintFailures)
	counter(descContextsAhead, cs.ContextsAhead)
	counter(descCoveredBlind, cs.CoveredBlindWrites)
	counter(descCoverFallbacks, cs.CoverFallbacks)
	gauge(descCoordInFlight, float64(cs.InFlight))
	counter(descCoordHedges, cs.Hedges)
	for _, p := range cl.coord.Peers() {
		unreachable := 0.0
		if p.Unreachable {
			unreachable = 1
		}
		gauge(descPeerUnreachable, unreachable, p.ID)
		counter(descPeerTrips, p.Trips, p.ID)
		gauge(descPeerP99, p.P99.Seconds(), p.ID)
		gauge(descPeerHedgeAfter, p.HedgeAfter.Seconds(), p.ID)
	}

	now := n.cfg.now()
	for owner, h := range n.store.HintStats() {
		gauge(descHintsPending, float64(h.Count), owner)
		if !h.Oldest.IsZero() {
			gauge(descHintsOldest, now.Sub(h.Oldest).Seconds(), owner)
		}
	}
	if cl.hints != nil {
		ds := cl.hints.Stats()
		counter(descHintsDelivered, ds.Delivered)
		counter(descHintsFailed, ds.Failed)
	}
	if as := n.aae.stats(); as != nil {
		treesReady := 0.0
		if as.TreesReady {
			treesReady = 1
		}
		gauge(descAAEReady, treesReady)
		gauge(descAAETreeKeys, float64(as.TreeKeys))
		counter(descAAERounds, as.Rounds)
		counter(descAAEExchanges, as.Exchanges)
		counter(descAAEDiffering, as.PartitionsDiffering)
		counter(descAAEKeys, as.KeysPulled, "pulled")
		counter(descAAEKeys, as.KeysPushed, "pushed")
		counter(descAAEErrors, as.Errors)
		if !as.LastExchange.IsZero() {
			gauge(descAAELastExchange, float64(as.LastExchange.UnixNano())/1e9)
		}
	}

	rs, ss, ts := cl.rpc.Stats(), cl.rpcServer.Stats(), cl.transport.Stats()
	for _, cc := range rs.Calls {
		counter(descRPCCalls, cc.Count, cc.Call, "sent", cc.Via)
	}
	for _, cc := range ss.Calls {
		counter(descRPCCalls, cc.Count, cc.Call, "served", cc.Via)
	}
	gauge(descRPCConns, float64(rs.Transport.Conns), "client")
	gauge(descRPCConns, float64(ts.Conns), "server")
	counter(descRPCDials, rs.Transport.Dials)
	counter(descRPCDialFailures, rs.Transport.DialFailures)
	gauge(descRPCHTTP2Peers, float64(rs.HTTP2Peers))
	counter(descRPCUpgradesRefused, ts.UpgradesRefused)
	counter(descRPCHandshakeFailures, ts.HandshakeFailures)
	counter(descRPCCallsRefused, ts.CallsRefused)

	hs := cl.handoff.Stats()
	counter(descHandoffPasses, hs.Passes)
	counter(descHandoffFailures, hs.Failures)
	counter(descHandoffKeys, hs.KeysSent)
	counter(descHandoffBytes, hs.BytesSent)
	counter(descHandoffDropped, hs.KeysDropped)

	self := cl.members.Self()
	state := cl.members.State()
	p := cl.members.Placement()
	share, pending := 0.0, 0.0
	if p.Committed != nil {
		share = p.Committed.Share(self)
	}
	if p.Target != nil {
		pending = 1
	}
	gauge(descRingShare, share)
	gauge(descRingEpoch, float64(state.Committed.Epoch))
	gauge(descRingSize, float64(len(state.Committed.Members)))
	gauge(descPending, pending)
	gauge(descPartitions, float64(state.Partitions))
	byStatus := map[membership.Status]int{}
	byLiveness := map[membership.Liveness]int{membership.Alive: 0, membership.Suspect: 0, membership.Dead: 0}
	for _, m := range state.Members {
		byStatus[m.Status]++
		if m.ID != self && m.Status != membership.StatusLeft && m.Status != membership.StatusRemoved {
			byLiveness[cl.members.Liveness(m.ID)]++
		}
	}
	for _, s := range allStatuses {
		gauge(descMembers, float64(byStatus[s]), s.String())
	}
	for l, v := range byLiveness {
		gauge(descLiveness, float64(v), string(l))
	}
}
