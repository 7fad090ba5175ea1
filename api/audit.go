package api

import "time"

// Checkpoint is a signed checkpoint of the audit log.
type Checkpoint struct {
	Size int64     `json:"size"`
	Root []byte    `json:"root"`
	Time time.Time `json:"time"`
	// Note is the checkpoint in the signed-note format; it is the
	// authority, the other fields repeat it.
	Note string `json:"note"`
	// Key is the verifier key that checks Note.
	Key string `json:"key"`
}

// AuditKey is the public key that verifies checkpoints and evidence.
type AuditKey struct {
	Origin string `json:"origin"`
	// Key is in the signed-note verifier format,
	// "<origin>+<key hash>+<base64 Ed25519 key>".
	Key string `json:"key"`
}
