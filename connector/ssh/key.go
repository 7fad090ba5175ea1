package ssh

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	gossh "golang.org/x/crypto/ssh"
)

// caKeyComment is the comment written into a generated CA key file.
const caKeyComment = "lapse ssh user CA"

// LoadOrCreateCAKey reads the CA key from path, or generates an Ed25519 key
// and writes it there with mode 0600 if the file does not exist. The file
// is in OpenSSH's private key format (what ssh-keygen writes), without a
// passphrase; keys that ssh-keygen writes as PKCS #8 or PEM load as well,
// of any type that OpenSSH certificates can be signed with. It refuses a
// key file that others can read.
func LoadOrCreateCAKey(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createCAKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read ssh CA key: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read ssh CA key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("ssh CA key %s is readable by others (mode %o); chmod 600 it", filepath.Base(path), fi.Mode().Perm())
	}
	k, err := gossh.ParseRawPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse ssh CA key %s: %w", filepath.Base(path), err)
	}
	if p, ok := k.(*ed25519.PrivateKey); ok {
		k = *p
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("ssh CA key %s: %T cannot sign", filepath.Base(path), k)
	}
	if _, err := gossh.NewSignerFromSigner(s); err != nil {
		return nil, fmt.Errorf("ssh CA key %s: %w", filepath.Base(path), err)
	}
	return s, nil
}

// createCAKey generates an Ed25519 key and writes it to path, failing if
// the file appeared in the meantime.
func createCAKey(path string) (crypto.Signer, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ssh CA key: %w", err)
	}
	block, err := gossh.MarshalPrivateKey(key, caKeyComment)
	if err != nil {
		return nil, fmt.Errorf("encode ssh CA key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create ssh CA key dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create ssh CA key: %w", err)
	}
	if err := pem.Encode(f, block); err != nil {
		f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("write ssh CA key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("write ssh CA key: %w", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("write ssh CA key: %w", err)
	}
	return key, nil
}
