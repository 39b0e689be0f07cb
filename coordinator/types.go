package coordinator

import "github.com/dynkv/dynkv/replication/rpc"

// The request and error types are replication's, so a write forwarded over
// RPC and one coordinated here are the same value, and a *QuorumError keeps
// its needed/acked across the hop.
type (
	WriteRequest = rpc.WriteRequest
	WriteResult  = rpc.WriteResult
	QuorumError  = rpc.QuorumError
)
