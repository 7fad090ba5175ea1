package auditlog

import (
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/note"

	"github.com/lapse-access/lapse"
)

// CheckpointError reports a checkpoint that does not verify: a bad
// signature, another key, or a text that is not a checkpoint.
type CheckpointError struct {
	Size   int64
	Reason string
}

func (e *CheckpointError) Error() string {
	if e.Size > 0 {
		return fmt.Sprintf("checkpoint of size %d: %s", e.Size, e.Reason)
	}
	return "checkpoint: " + e.Reason
}

// Result is what a verification established.
type Result struct {
	// Records is how many records were checked, from First.
	Records int64 `json:"records"`
	First   int64 `json:"first,omitempty"`
	// Size, Head and Root are those of the tree after the last record.
	Size int64  `json:"size"`
	Head string `json:"head"`
	Root []byte `json:"root"`
	// Checkpoints is how many signed checkpoints matched the records.
	Checkpoints int `json:"checkpoints"`
	// Signed is the size of the largest of them: records up to it are
	// covered by a signature; later ones only by the chain.
	Signed int64 `json:"signed"`
}

// Verifier checks audit records in order: each against its hash and the
// previous record (the chain), and the tree they build against every
// signed checkpoint. Add the checkpoints first, then the records, then call
// Finish. Errors about records are *[lapse.ChainError] with the first bad
// record; errors about checkpoints are *[CheckpointError].
type Verifier struct {
	key   note.Verifier
	chain lapse.ChainVerifier
	tree  *Tree
	start int64
	cps   []CheckpointBody
	next  int
	res   Result
	// kept is the tree the store keeps, compared when the records reach
	// its size.
	kept     *lapse.AuditTree
	keptRoot []byte
}

// NewVerifier returns a verifier of the records that follow start (the
// empty tree for the whole log), checking checkpoints with key.
func NewVerifier(key note.Verifier, start lapse.AuditTree) (*Verifier, error) {
	t, err := NewTree(start)
	if err != nil {
		return nil, err
	}
	v := &Verifier{key: key, tree: t, start: start.Size}
	v.chain.Resume(start.Size, start.Head)
	return v, nil
}

// AddCheckpoint verifies a signed checkpoint and keeps it to compare with
// the tree when it reaches its size. Checkpoints older than the start are
// skipped; one of the start's size is compared at once.
func (v *Verifier) AddCheckpoint(msg []byte) error {
	c, err := OpenCheckpoint(msg, v.key)
	if err != nil {
		return &CheckpointError{Reason: err.Error()}
	}
	switch {
	case c.Size < v.start:
		return nil
	case c.Size == v.start:
		if !sameRoot(c.Root, v.tree.Root()) {
			return &lapse.ChainError{Seq: c.Size, Reason: fmt.Sprintf("the log before the first record does not match the checkpoint signed at size %d", c.Size)}
		}
		v.matched(c)
		return nil
	}
	i, found := slices.BinarySearchFunc(v.cps, c.Size, func(a CheckpointBody, size int64) int { return int(a.Size - size) })
	if found {
		if !sameRoot(v.cps[i].Root, c.Root) {
			return &CheckpointError{Size: c.Size, Reason: "two signed checkpoints of this size state different roots (the log was forked)"}
		}
		return nil
	}
	v.cps = slices.Insert(v.cps, i, c)
	return nil
}

// CompareTree has the records compared, when they reach its size, with
// the tree the store keeps: records rewritten with their chain recomputed
// after the last checkpoint do not match it.
func (v *Verifier) CompareTree(st lapse.AuditTree) error {
	root, err := RootOf(st)
	if err != nil {
		return err
	}
	v.kept, v.keptRoot = &st, root
	return nil
}

func (v *Verifier) matched(c CheckpointBody) {
	v.res.Checkpoints++
	v.res.Signed = max(v.res.Signed, c.Size)
}

// Add checks the next record.
func (v *Verifier) Add(ev lapse.AuditEvent) error {
	if err := v.chain.Add(ev); err != nil {
		return err
	}
	if err := v.tree.Append(ev.Hash); err != nil {
		return &lapse.ChainError{Seq: ev.Seq, Reason: err.Error()}
	}
	if v.res.First == 0 {
		v.res.First = ev.Seq
	}
	v.res.Records++
	for v.next < len(v.cps) && v.cps[v.next].Size == v.tree.Size() {
		c := v.cps[v.next]
		if !sameRoot(c.Root, v.tree.Root()) {
			from := max(v.res.Signed, v.start) + 1
			return &lapse.ChainError{Seq: from, Reason: fmt.Sprintf(
				"records %d to %d do not match the checkpoint signed at size %d (records were rewritten)", from, c.Size, c.Size)}
		}
		v.matched(c)
		v.next++
	}
	if v.kept != nil && v.kept.Size == v.tree.Size() && (!sameRoot(v.keptRoot, v.tree.Root()) || v.kept.Head != ev.Hash) {
		from := max(v.res.Signed, v.start) + 1
		return &lapse.ChainError{Seq: from, Reason: fmt.Sprintf(
			"records %d to %d do not match the tree Lapse keeps (records were rewritten)", from, v.kept.Size)}
	}
	return nil
}

// Finish reports records missing from the end that a checkpoint covers,
// and returns what was verified.
func (v *Verifier) Finish() (Result, error) {
	v.res.Size, v.res.Head, v.res.Root = v.tree.Size(), v.tree.Head(), v.tree.Root()
	if v.next < len(v.cps) {
		last := v.cps[len(v.cps)-1]
		return v.res, &lapse.ChainError{Seq: v.tree.Size() + 1, Reason: fmt.Sprintf(
			"record %d is missing: a checkpoint signed at %s covers %d records, the log holds %d (records were deleted from the end)",
			v.tree.Size()+1, last.Time.UTC().Format("2006-01-02 15:04:05Z"), last.Size, v.tree.Size())}
	}
	return v.res, nil
}
