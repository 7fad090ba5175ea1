package auditlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/lapse-access/lapse"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
)

// HashSize is the size of every hash in the tree.
const HashSize = 32

var (
	hasher  = rfc6962.DefaultHasher
	factory = &compact.RangeFactory{Hash: hashChildren}
)

// hashChildren is [rfc6962.Hasher.HashChildren] (SHA-256 of 0x01 and the
// two children) with one allocation instead of three: verification
// computes it about once per record.
func hashChildren(l, r []byte) []byte {
	if len(l) != HashSize || len(r) != HashSize {
		return hasher.HashChildren(l, r)
	}
	var b [1 + 2*HashSize]byte
	b[0] = rfc6962.RFC6962NodeHashPrefix
	copy(b[1:], l)
	copy(b[1+HashSize:], r)
	h := sha256.Sum256(b[:])
	return h[:]
}

// LeafHash returns the RFC 6962 leaf hash of the record whose chain hash
// (the hex [lapse.AuditEvent.Hash]) is hash: SHA-256 of the byte 0x00 and
// the 32 bytes of the chain hash. The chain hash covers every field of the
// record, length-prefixed, and the previous record's hash.
func LeafHash(hash string) ([]byte, error) {
	var b [1 + HashSize]byte // the prefix and the leaf
	if len(hash) != 2*HashSize {
		return nil, fmt.Errorf("record hash %q is not %d hex digits", hash, 2*HashSize)
	}
	if _, err := hex.Decode(b[1:], []byte(hash)); err != nil {
		return nil, fmt.Errorf("record hash %q: %w", hash, err)
	}
	b[0] = rfc6962.RFC6962LeafHashPrefix
	h := sha256.Sum256(b[:])
	return h[:], nil
}

// Tree is the Merkle tree over the audit log as a compact range: enough to
// append leaves and compute the root, in O(log n) space.
type Tree struct {
	r    *compact.Range
	head string
}

// NewTree returns the tree of state. The state's hashes are not modified.
func NewTree(state lapse.AuditTree) (*Tree, error) {
	if state.Size < 0 {
		return nil, fmt.Errorf("audit tree: negative size %d", state.Size)
	}
	hashes := make([][]byte, len(state.Hashes))
	copy(hashes, state.Hashes)
	r, err := factory.NewRange(0, uint64(state.Size), hashes)
	if err != nil {
		return nil, fmt.Errorf("audit tree of size %d: %w", state.Size, err)
	}
	return &Tree{r: r, head: state.Head}, nil
}

// Append adds the record with chain hash hash as the next leaf.
func (t *Tree) Append(hash string) error {
	leaf, err := LeafHash(hash)
	if err != nil {
		return err
	}
	if err := t.r.Append(leaf, nil); err != nil {
		return fmt.Errorf("audit tree: %w", err)
	}
	t.head = hash
	return nil
}

// Head returns the chain hash of the last record appended.
func (t *Tree) Head() string { return t.head }

// Size returns the number of leaves.
func (t *Tree) Size() int64 { return int64(t.r.End()) }

// Root returns the RFC 6962 root hash; that of the empty tree is SHA-256
// of nothing.
func (t *Tree) Root() []byte {
	if t.r.End() == 0 {
		return hasher.EmptyRoot()
	}
	root, err := t.r.GetRootHash(nil)
	if err != nil { // only for ranges that do not start at 0
		return nil
	}
	return root
}

// State returns the tree's state for storing. It shares no memory with
// later appends.
func (t *Tree) State() lapse.AuditTree {
	hs := t.r.Hashes()
	out := make([][]byte, len(hs))
	copy(out, hs)
	return lapse.AuditTree{Size: t.Size(), Head: t.head, Hashes: out}
}

// EncodeHashes concatenates hashes, for storing a tree state in one column.
func EncodeHashes(hs [][]byte) []byte {
	return bytes.Join(hs, nil)
}

// DecodeHashes splits what [EncodeHashes] made.
func DecodeHashes(b []byte) ([][]byte, error) {
	if len(b)%HashSize != 0 {
		return nil, fmt.Errorf("audit tree hashes: %d bytes is not a multiple of %d", len(b), HashSize)
	}
	out := make([][]byte, 0, len(b)/HashSize)
	for i := 0; i < len(b); i += HashSize {
		out = append(out, b[i:i+HashSize:i+HashSize])
	}
	return out, nil
}

// RootOf returns the root hash of a stored tree state.
func RootOf(state lapse.AuditTree) ([]byte, error) {
	t, err := NewTree(state)
	if err != nil {
		return nil, err
	}
	return t.Root(), nil
}
