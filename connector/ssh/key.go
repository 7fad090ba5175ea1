package ssh

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"github.com/lapse-access/lapse"
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
	return LoadOrCreateCAKeyIn(context.Background(), keyfile.Dir(filepath.Dir(path)), filepath.Base(path))
}

// LoadOrCreateCAKeyIn returns the CA key stored under name in keys, in the
// formats [LoadOrCreateCAKey] reads, generating and storing an Ed25519 key
// if there is none. Servers that share keys sign with the same CA.
func LoadOrCreateCAKeyIn(ctx context.Context, keys lapse.KeyStore, name string) (crypto.Signer, error) {
	b, err := keys.LoadOrCreate(ctx, name, func() ([]byte, error) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ssh CA key: %w", err)
		}
		block, err := gossh.MarshalPrivateKey(key, caKeyComment)
		if err != nil {
			return nil, fmt.Errorf("encode ssh CA key: %w", err)
		}
		return pem.EncodeToMemory(block), nil
	})
	if err != nil {
		return nil, fmt.Errorf("ssh CA key: %w", err)
	}
	k, err := gossh.ParseRawPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse ssh CA key %s: %w", name, err)
	}
	if p, ok := k.(*ed25519.PrivateKey); ok {
		k = *p
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("ssh CA key %s: %T cannot sign", name, k)
	}
	if _, err := gossh.NewSignerFromSigner(s); err != nil {
		return nil, fmt.Errorf("ssh CA key %s: %w", name, err)
	}
	return s, nil
}
