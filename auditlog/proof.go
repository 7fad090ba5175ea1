package auditlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/lapse-access/lapse"
)

// Proof is an RFC 6962 inclusion proof of the record Seq in the tree of
// the first Size records: the hashes from the leaf's sibling up to the
// root.
type Proof struct {
	Seq    int64    `json:"seq"`
	Size   int64    `json:"size"`
	Hashes [][]byte `json:"hashes"`
}

// Proofs returns inclusion proofs of the records seqs in the tree of the
// first size records. It reads the records up to size once.
func (l *Log) Proofs(ctx context.Context, seqs []int64, size int64) ([]Proof, error) {
	st, err := l.Store.AuditTree(ctx)
	if err != nil {
		return nil, err
	}
	if size < 1 || size > st.Size {
		return nil, lapse.Invalidf("size: want a tree size from 1 to %d, got %d", st.Size, size)
	}
	nodes := make([]proof.Nodes, len(seqs))
	need := map[compact.NodeID][]byte{}
	for i, seq := range seqs {
		if seq < 1 || seq > size {
			return nil, lapse.Invalidf("record %d is not in the tree of size %d", seq, size)
		}
		if nodes[i], err = proof.Inclusion(uint64(seq-1), uint64(size)); err != nil {
			return nil, fmt.Errorf("proof of record %d: %w", seq, err)
		}
		for _, id := range nodes[i].IDs {
			need[id] = nil
		}
	}
	r := factory.NewEmptyRange(0)
	visit := func(id compact.NodeID, hash []byte) {
		if _, ok := need[id]; ok {
			need[id] = hash
		}
	}
	err = l.scan(ctx, 0, func(ev lapse.AuditEvent) error {
		if ev.Seq > size {
			return errStop
		}
		leaf, err := LeafHash(ev.Hash)
		if err != nil {
			return err
		}
		return r.Append(leaf, visit)
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("proofs: %w", err)
	}
	if r.End() != uint64(size) {
		return nil, &lapse.ChainError{Seq: int64(r.End()) + 1, Reason: "record missing"}
	}
	out := make([]Proof, len(seqs))
	for i, n := range nodes {
		hs := make([][]byte, len(n.IDs))
		for j, id := range n.IDs {
			hs[j] = need[id]
		}
		p, err := n.Rehash(hs, hasher.HashChildren)
		if err != nil {
			return nil, fmt.Errorf("proof of record %d: %w", seqs[i], err)
		}
		out[i] = Proof{Seq: seqs[i], Size: size, Hashes: p}
	}
	return out, nil
}

// VerifyInclusion checks that ev is intact (its hash matches its content
// and the previous hash it names) and that p proves it is in the tree of
// p.Size records whose root is root.
func VerifyInclusion(ev lapse.AuditEvent, p Proof, root []byte) error {
	if ev.Seq != p.Seq {
		return fmt.Errorf("the proof is of record %d, not %d", p.Seq, ev.Seq)
	}
	if got := ev.ComputeHash(ev.PrevHash); got != ev.Hash {
		return &lapse.ChainError{Seq: ev.Seq, Reason: "content does not match its hash (the record was edited)"}
	}
	leaf, err := LeafHash(ev.Hash)
	if err != nil {
		return &lapse.ChainError{Seq: ev.Seq, Reason: err.Error()}
	}
	if p.Seq < 1 || p.Seq > p.Size {
		return &lapse.ChainError{Seq: ev.Seq, Reason: fmt.Sprintf("not in a tree of size %d", p.Size)}
	}
	if err := proof.VerifyInclusion(hasher, uint64(p.Seq-1), uint64(p.Size), leaf, p.Hashes, root); err != nil {
		return &lapse.ChainError{Seq: ev.Seq, Reason: fmt.Sprintf("not included in the signed tree of size %d: %v", p.Size, err)}
	}
	return nil
}

// AppendProofLine appends the JSON object {"record", "proof",
// "checkpoint"} with the record's data verbatim; proof and checkpoint are
// left out when empty.
func AppendProofLine(b []byte, ev lapse.AuditEvent, p *Proof, checkpoint []byte) ([]byte, error) {
	b = append(b, `{"record":`...)
	b, err := AppendRecord(b, ev)
	if err != nil {
		return nil, err
	}
	if p != nil {
		pb, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		b = append(append(b, `,"proof":`...), pb...)
	}
	if len(checkpoint) > 0 {
		cb, err := json.Marshal(string(checkpoint))
		if err != nil {
			return nil, err
		}
		b = append(append(b, `,"checkpoint":`...), cb...)
	}
	return append(b, '}'), nil
}

// ProvenRecord is a record with its inclusion proof and the signed
// checkpoint it is proved against, as the API returns it.
type ProvenRecord struct {
	Record     lapse.AuditEvent
	Proof      Proof
	Checkpoint []byte
}

// ParseProvenRecord reads what [AppendProofLine] wrote.
func ParseProvenRecord(b []byte) (ProvenRecord, error) {
	var l exportLine
	if err := json.Unmarshal(b, &l); err != nil {
		return ProvenRecord{}, lapse.Invalidf("proof: %v", err)
	}
	if l.Record == nil || l.Proof == nil {
		return ProvenRecord{}, lapse.Invalidf("proof: no record or no proof")
	}
	return ProvenRecord{Record: l.Record.event(), Proof: *l.Proof, Checkpoint: []byte(l.Checkpoint)}, nil
}

// Verify checks the proven record with key: the checkpoint's signature,
// the record's hash, and its inclusion in the checkpoint's tree.
func (pr ProvenRecord) Verify(key string) (CheckpointBody, error) {
	k, err := ParseVerifierKey(key)
	if err != nil {
		return CheckpointBody{}, err
	}
	cp, err := OpenCheckpoint(pr.Checkpoint, k)
	if err != nil {
		return CheckpointBody{}, &CheckpointError{Reason: err.Error()}
	}
	if cp.Size != pr.Proof.Size {
		return cp, &CheckpointError{Size: cp.Size, Reason: fmt.Sprintf("the proof is for a tree of size %d", pr.Proof.Size)}
	}
	return cp, VerifyInclusion(pr.Record, pr.Proof, cp.Root)
}

// ProveRecord returns the record seq with its inclusion proof against the
// latest checkpoint, signing one if the log grew since.
func (l *Log) ProveRecord(ctx context.Context, seq int64) (ProvenRecord, error) {
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		return ProvenRecord{}, err
	}
	return l.prove(ctx, seq, cp)
}

func (l *Log) prove(ctx context.Context, seq int64, cp lapse.Checkpoint) (ProvenRecord, error) {
	evs, err := l.Store.ListAudit(ctx, lapse.AuditFilter{AfterSeq: seq - 1, Limit: 1})
	if err != nil {
		return ProvenRecord{}, err
	}
	if len(evs) == 0 || evs[0].Seq != seq || seq < 1 {
		return ProvenRecord{}, lapse.NotFoundf("audit record %d not found", seq)
	}
	if seq > cp.Size {
		return ProvenRecord{}, lapse.NotFoundf("audit record %d is not covered by the checkpoint of size %d yet", seq, cp.Size)
	}
	ps, err := l.Proofs(ctx, []int64{seq}, cp.Size)
	if err != nil {
		return ProvenRecord{}, err
	}
	return ProvenRecord{Record: evs[0], Proof: ps[0], Checkpoint: cp.Note}, nil
}

// Encode returns the proven record as one JSON object, its data verbatim.
func (pr ProvenRecord) Encode() ([]byte, error) {
	return AppendProofLine(nil, pr.Record, &pr.Proof, pr.Checkpoint)
}

// ProveRecordAt returns the record seq with its inclusion proof in the tree
// of the first size records, and the checkpoint of that size if one was
// signed.
func (l *Log) ProveRecordAt(ctx context.Context, seq, size int64) (ProvenRecord, error) {
	cps, err := l.Store.ListCheckpoints(ctx, size, 1)
	if err != nil {
		return ProvenRecord{}, err
	}
	cp := lapse.Checkpoint{Size: size}
	if len(cps) == 1 && cps[0].Size == size {
		cp = cps[0]
	}
	return l.prove(ctx, seq, cp)
}
