package seal_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/lapse-access/lapse/seal"
)

func TestSealOpen(t *testing.T) {
	key, err := seal.LoadOrCreateKey(filepath.Join(t.TempDir(), "seal.key"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.Seal([]byte("s3cret"), []byte("r1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(s, []byte("s3cret")) {
		t.Fatal("plaintext visible")
	}
	if p, err := b.Open(s, []byte("r1")); err != nil || string(p) != "s3cret" {
		t.Fatalf("open: %q %v", p, err)
	}
	if _, err := b.Open(s, []byte("r2")); err == nil {
		t.Fatal("opened under another request id")
	}
	s[len(s)-1] ^= 1
	if _, err := b.Open(s, []byte("r1")); err == nil {
		t.Fatal("opened tampered secret")
	}
}
