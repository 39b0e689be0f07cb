package coordinator

import "github.com/dynkv/dynkv/replication"

// The request and error types are replication's, so a write forwarded over
// RPC and one coordinated here are the same value, and a *QuorumError keeps
// its needed/acked across the hop.
type (
	WriteRequest = replication.WriteRequest
	WriteResult  = replication.WriteResult
	QuorumError  = replication.QuorumError
)
