package lapse

import (
	"context"
	"time"
)

// AuditTree is the persisted state of the RFC 6962 Merkle tree over the
// audit log: how many records it holds, the hash of the last one, and the
// compact range of the tree (the roots of its perfect subtrees, left to
// right), from which the next append and the root hash are computed. Leaf i
// (from 0) is the record with Seq i+1.
type AuditTree struct {
	Size   int64
	Head   string
	Hashes [][]byte
}

// Checkpoint is a signed statement of the audit log's tree: its size and
// root hash, in the signed-note format of transparency logs. Note is the
// authority; Size, Root and Time are stored beside it for lookups.
type Checkpoint struct {
	Size int64
	Root []byte
	Time time.Time
	Note []byte
}

// CheckpointReader reads the audit log's tree and its signed checkpoints.
type CheckpointReader interface {
	// AuditTree returns the state of the audit log's Merkle tree: as of the
	// last commit outside a transaction; inside one, with its own appends,
	// and locked against other writers until it ends where the store
	// supports several.
	AuditTree(ctx context.Context) (AuditTree, error)
	// ListCheckpoints returns up to limit checkpoints whose size is at
	// least fromSize, smallest first. A limit of zero or less means 1000.
	ListCheckpoints(ctx context.Context, fromSize int64, limit int) ([]Checkpoint, error)
	// LatestCheckpoint returns the checkpoint of the largest size, or an
	// error matching [ErrNotFound] when none was signed yet.
	LatestCheckpoint(ctx context.Context) (Checkpoint, error)
	// ScanAuditFrom calls fn for every audit event with a Seq above after,
	// in sequence order, stopping at the first error, which it returns.
	ScanAuditFrom(ctx context.Context, after int64, fn func(AuditEvent) error) error
}

// CheckpointWriter stores signed checkpoints.
type CheckpointWriter interface {
	// AddCheckpoint stores c. A checkpoint of the same size is an error
	// matching [ErrConflict]; checkpoints are never changed or removed.
	AddCheckpoint(ctx context.Context, c Checkpoint) error
}

// Resume makes v continue after record seq, whose hash is head: for
// verifying a part of the log that starts after seq.
func (v *ChainVerifier) Resume(seq int64, head string) {
	v.next, v.prev = seq+1, head
}
