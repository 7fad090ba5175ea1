package auditlog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/internal/keyfile"
)

// Keys gives the key that signs checkpoints and evidence bundles. Every
// server of one log must use the same key.
type Keys interface {
	// Signer returns the signer; its name is the log's origin.
	Signer(ctx context.Context) (note.Signer, error)
	// VerifierKey returns the public key in the signed-note verifier
	// format, "<origin>+<key hash>+<base64 key>", which auditors pin.
	VerifierKey(ctx context.Context) (string, error)
}

// FileKey is a [Keys] kept in a private key file in the data directory:
// the signed-note signer key ("PRIVATE+KEY+<origin>+<hash>+<key>").
type FileKey struct {
	signer note.Signer
	vkey   string
}

var _ Keys = (*FileKey)(nil)

// LoadOrCreateFileKey reads the key at path, or creates one for origin
// there. An existing key for another origin is an error, unless origin is
// empty, which accepts the key's.
func LoadOrCreateFileKey(path, origin string) (*FileKey, error) {
	return LoadOrCreateKeyIn(context.Background(), keyfile.Dir(filepath.Dir(path)), filepath.Base(path), origin, origin)
}

// LoadOrCreateKeyIn returns the key stored under name in keys, or creates
// one for newOrigin there. An existing key for another origin than origin
// is an error; an empty origin accepts the key's. Servers that share keys
// sign checkpoints with the same key, for the same origin.
func LoadOrCreateKeyIn(ctx context.Context, keys lapse.KeyStore, name, origin, newOrigin string) (*FileKey, error) {
	b, err := keys.LoadOrCreate(ctx, name, func() ([]byte, error) {
		if newOrigin == "" {
			return nil, errors.New("checkpoint key: no origin to create a key for")
		}
		skey, _, err := note.GenerateKey(rand.Reader, newOrigin)
		if err != nil {
			return nil, fmt.Errorf("create checkpoint key: %w", err)
		}
		return []byte(skey + "\n"), nil
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint key: %w", err)
	}
	k, err := parseSignerKey(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, err
	}
	if origin != "" && k.signer.Name() != origin {
		return nil, fmt.Errorf("checkpoint key is for origin %q, not %q: a log keeps its origin", k.signer.Name(), origin)
	}
	return k, nil
}

// parseSignerKey reads a signed-note signer key and derives its verifier
// key.
func parseSignerKey(skey string) (*FileKey, error) {
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key: %w", err)
	}
	// PRIVATE+KEY+<name>+<hash>+<base64(alg || seed)>; names hold no +.
	parts := strings.SplitN(strings.TrimPrefix(skey, "PRIVATE+KEY+"), "+", 3)
	if len(parts) != 3 {
		return nil, errors.New("checkpoint key: malformed signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, errors.New("checkpoint key: not an Ed25519 signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key: %w", err)
	}
	return &FileKey{signer: signer, vkey: vkey}, nil
}

// Signer returns the signer.
func (k *FileKey) Signer(context.Context) (note.Signer, error) { return k.signer, nil }

// VerifierKey returns the public verifier key.
func (k *FileKey) VerifierKey(context.Context) (string, error) { return k.vkey, nil }

// ParseVerifierKey parses a verifier key ("<origin>+<hash>+<base64 key>").
func ParseVerifierKey(vkey string) (note.Verifier, error) {
	v, err := note.NewVerifier(strings.TrimSpace(vkey))
	if err != nil {
		return nil, lapse.Invalidf("verifier key: %v (want <origin>+<hash>+<base64 key>, as lapse audit key prints)", err)
	}
	return v, nil
}

// CheckpointBody is what a checkpoint states, in the C2SP tlog-checkpoint
// text format: the origin, the tree size in decimal, the base64 root hash,
// each on its own line, then an extension line with the signing time.
type CheckpointBody struct {
	Origin string
	Size   int64
	Root   []byte
	Time   time.Time
}

// Text returns the checkpoint's note text.
func (c CheckpointBody) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\ntime %s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Root), c.Time.UTC().Format(time.RFC3339Nano))
}

// SignCheckpoint signs body with signer, whose name must be its origin.
func SignCheckpoint(body CheckpointBody, signer note.Signer) ([]byte, error) {
	if signer.Name() != body.Origin {
		return nil, fmt.Errorf("sign checkpoint: key is for %q, checkpoint for %q", signer.Name(), body.Origin)
	}
	msg, err := note.Sign(&note.Note{Text: body.Text()}, signer)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	return msg, nil
}

// OpenCheckpoint verifies a signed checkpoint with v and returns what it
// states. A signature by another key, a changed text, or a text that is
// not a checkpoint of v's origin is an error.
func OpenCheckpoint(msg []byte, v note.Verifier) (CheckpointBody, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return CheckpointBody{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		return CheckpointBody{}, errors.New("checkpoint: fewer than three lines")
	}
	var c CheckpointBody
	c.Origin = lines[0]
	if c.Origin != v.Name() {
		return CheckpointBody{}, fmt.Errorf("checkpoint of origin %q, not %q", c.Origin, v.Name())
	}
	if c.Size, err = strconv.ParseInt(lines[1], 10, 64); err != nil || c.Size < 0 || lines[1] != strconv.FormatInt(c.Size, 10) {
		return CheckpointBody{}, fmt.Errorf("checkpoint: size %q is not a decimal number", lines[1])
	}
	if c.Root, err = base64.StdEncoding.DecodeString(lines[2]); err != nil || len(c.Root) != HashSize {
		return CheckpointBody{}, fmt.Errorf("checkpoint: root %q is not a base64 SHA-256 hash", lines[2])
	}
	for _, l := range lines[3:] {
		if v, ok := strings.CutPrefix(l, "time "); ok {
			if c.Time, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return CheckpointBody{}, fmt.Errorf("checkpoint: time %q: %w", v, err)
			}
		}
	}
	return c, nil
}

// sameRoot compares two hashes.
func sameRoot(a, b []byte) bool { return bytes.Equal(a, b) }
