package auditlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/lapse-access/lapse"
)

// TestTreeIsRFC6962 checks the tree's own leaf and node hashing against
// the merkle package's RFC 6962 hasher, root by root.
func TestTreeIsRFC6962(t *testing.T) {
	ref := (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0)
	tree, err := NewTree(lapse.AuditTree{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		sum := sha256.Sum256(fmt.Appendf(nil, "record %d", i))
		hash := hex.EncodeToString(sum[:])
		if err := tree.Append(hash); err != nil {
			t.Fatal(err)
		}
		if err := ref.Append(rfc6962.DefaultHasher.HashLeaf(sum[:]), nil); err != nil {
			t.Fatal(err)
		}
		want, err := ref.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := tree.Root(); !bytes.Equal(got, want) {
			t.Fatalf("size %d: root %x, RFC 6962 says %x", i+1, got, want)
		}
	}
	if got, want := hashChildren([]byte("short"), []byte("r")), rfc6962.DefaultHasher.HashChildren([]byte("short"), []byte("r")); !bytes.Equal(got, want) {
		t.Errorf("children of other sizes: %x, want %x", got, want)
	}
}
