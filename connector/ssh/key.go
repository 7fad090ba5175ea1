package ssh

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	gossh "golang.org/x/crypto/ssh"

	"github.com/lapse-access/lapse/internal/keyfile"
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
	b, err := keyfile.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createCAKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read ssh CA key: %w", err)
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
	if err := keyfile.Create(path, pem.EncodeToMemory(block)); err != nil {
		return nil, fmt.Errorf("ssh CA key: %w", err)
	}
	return key, nil
}
