package keyfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/lapse-access/lapse/internal/keyfile"
)

func TestCreateRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "k.key")
	if _, err := keyfile.Read(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if err := keyfile.Create(path, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	di, _ := os.Stat(filepath.Dir(path))
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Fatalf("modes %o %o", fi.Mode().Perm(), di.Mode().Perm())
	}
	if err := keyfile.Create(path, []byte("other")); err == nil {
		t.Fatal("overwrote an existing key")
	}
	if b, err := keyfile.Read(path); err != nil || string(b) != "secret" {
		t.Fatalf("read %q %v", b, err)
	}
	_ = os.Chmod(path, 0o640)
	if _, err := keyfile.Read(path); err == nil {
		t.Fatal("a group-readable key was read")
	}
}
