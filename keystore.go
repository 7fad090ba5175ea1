package lapse

import "context"

// KeyStore keeps the keys a server generates once and then reuses: the
// token signing key, the key that seals waiting credentials, an SSH CA key.
// One server keeps them as files in its data directory; several replicas
// keep them in their shared database, sealed under a key they all have.
type KeyStore interface {
	// LoadOrCreate returns the key stored under name. When there is none
	// it calls create and stores its result. Callers racing to create the
	// same key, in this process or in another server sharing the store,
	// all get the one that was stored first. name is a short file-like
	// name such as "token.key".
	LoadOrCreate(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error)
}
