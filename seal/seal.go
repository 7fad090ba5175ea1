// Package seal encrypts small secrets at rest with AES-256-GCM under a key
// kept in Lapse's data directory.
package seal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/internal/keyfile"
)

// Box seals and opens secrets with one key.
type Box struct{ aead cipher.AEAD }

var _ lapse.Sealer = (*Box)(nil)

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("seal key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	return &Box{aead: aead}, nil
}

// Seal encrypts plaintext; the result carries its random nonce.
func (b *Box) Seal(plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return b.aead.Seal(nonce, nonce, plaintext, aad), nil
}

// Open decrypts what Seal returned for the same aad.
func (b *Box) Open(sealed, aad []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("open sealed secret: too short")
	}
	p, err := b.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, errors.New("open sealed secret: authentication failed")
	}
	return p, nil
}

// LoadOrCreateKey reads a 32-byte key from path, or creates one with mode
// 0600 if the file does not exist.
func LoadOrCreateKey(path string) ([]byte, error) {
	return LoadOrCreateKeyIn(context.Background(), keyfile.Dir(filepath.Dir(path)), filepath.Base(path))
}

// LoadOrCreateKeyIn returns the 32-byte key stored under name in keys,
// generating and storing one if there is none.
func LoadOrCreateKeyIn(ctx context.Context, keys lapse.KeyStore, name string) ([]byte, error) {
	b, err := keys.LoadOrCreate(ctx, name, func() ([]byte, error) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("generate seal key: %w", err)
		}
		return key, nil
	})
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("seal key %s: want 32 bytes, got %d", name, len(b))
	}
	return b, nil
}
