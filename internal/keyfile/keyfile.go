// Package keyfile reads and creates the private key files Lapse keeps in
// its data directory: created with mode 0600 in a 0700 directory, and
// refused when group or others can read them.
package keyfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/lapse-access/lapse"
)

// Read returns the contents of the private key file at path. A missing
// file is an error matching fs.ErrNotExist; a file that group or others
// can read is refused.
func Read(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s is readable by others (mode %o); chmod 600 it", filepath.Base(path), fi.Mode().Perm())
	}
	return b, nil
}

// Create writes data to a new file at path with mode 0600, creating its
// directory with mode 0700 if needed. It fails if the file exists, and
// leaves no partial file behind.
func Create(path string, data []byte) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create key dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(path)
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write key file: %w", err)
	}
	return nil
}

// Dir is a [lapse.KeyStore] that keeps each key in a file of its name in
// the directory, read with [Read] and written with [Create].
type Dir string

var _ lapse.KeyStore = Dir("")

// LoadOrCreate returns the contents of the key file name in d, creating it
// from create if it does not exist. A file that group or others can read
// is refused.
func (d Dir) LoadOrCreate(_ context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
	path := filepath.Join(string(d), name)
	b, err := Read(path)
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	b, err = create()
	if err != nil {
		return nil, err
	}
	if err := Create(path, b); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Created meanwhile by someone else: theirs is the key.
			return Read(path)
		}
		return nil, err
	}
	return b, nil
}
