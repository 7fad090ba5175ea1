package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"

	"os"
	"path/filepath"
	"strings"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/config"
	"github.com/lapse-access/lapse/internal/keyfile"
	"github.com/lapse-access/lapse/seal"
	"github.com/lapse-access/lapse/sqlstore"
)

// Environment variables that override the config for the store. They let
// the database password and the secret key stay out of the config file.
const (
	envDatabase  = "LAPSE_DATABASE"
	envSecretKey = "LAPSE_SECRET_KEY"
	envReplicaID = "LAPSE_REPLICA_ID"
)

// secretKeyHint says how to make a secret key.
const secretKeyHint = "create one with `openssl rand -hex 32` and give every replica the same"

// storageOptions are the store settings that do not come from the config
// file.
type storageOptions struct {
	// secretKey seals the keys kept in a shared database; nil if none was
	// given.
	secretKey []byte
	// replica names this server in claims on a shared database.
	replica string
}

// storageFromEnv applies LAPSE_DATABASE (which wins over server.database)
// to cfg and reads the secret key from LAPSE_SECRET_KEY or
// server.secret_key_file, and the replica id.
func storageFromEnv(cfg *config.Config, getenv func(string) string) (storageOptions, error) {
	var o storageOptions
	if v := getenv(envDatabase); v != "" {
		if err := config.CheckDatabase(v); err != nil {
			return o, fmt.Errorf("%s: %w", envDatabase, err)
		}
		cfg.Server.Database = v
	}
	o.replica = getenv(envReplicaID)
	if cfg.Server.Database == "" {
		return o, nil
	}
	switch {
	case getenv(envSecretKey) != "":
		k, err := parseSecretKey(getenv(envSecretKey))
		if err != nil {
			return o, fmt.Errorf("%s: %w", envSecretKey, err)
		}
		o.secretKey = k
	case cfg.Server.SecretKeyFile != "":
		b, err := keyfile.Read(cfg.Server.SecretKeyFile)
		if err != nil {
			return o, fmt.Errorf("server.secret_key_file: %w", err)
		}
		k, err := parseSecretKey(string(b))
		if err != nil {
			return o, fmt.Errorf("server.secret_key_file %s: %w", cfg.Server.SecretKeyFile, err)
		}
		o.secretKey = k
	default:
		return o, fmt.Errorf("server.database is set but no secret key is: set server.secret_key_file or %s to the key that seals the keys replicas share in the database (%s)", envSecretKey, secretKeyHint)
	}
	if o.replica == "" {
		host, err := os.Hostname()
		if err != nil {
			return o, fmt.Errorf("name this replica: %w; set %s", err, envReplicaID)
		}
		o.replica = host + "/" + cfg.Server.Listen
		if strings.HasSuffix(cfg.Server.Listen, ":0") {
			// Any port: replicas on this host could share the name, and a
			// starting one would release the claims of a running one.
			var b [6]byte
			_, _ = rand.Read(b[:])
			o.replica += "/" + hex.EncodeToString(b[:])
		}
	}
	return o, nil
}

// parseSecretKey decodes a 32-byte key written as hex or base64. Its errors
// never quote the key.
func parseSecretKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == 32 {
		return b, nil
	}
	return nil, fmt.Errorf("the secret key must be 32 bytes written as 64 hex digits or in base64 (%s)", secretKeyHint)
}

// storage is an opened store with where its keys live.
type storage struct {
	store *sqlstore.Store
	keys  lapse.KeyStore
	// listener follows due times announced by other replicas; nil for the
	// embedded store, which no one else writes.
	listener *sqlstore.Listener
	// owner names this server in claims.
	owner string
}

// openStorage opens the embedded store in the data dir, with keys beside
// it, or the shared PostgreSQL store with keys sealed in it.
func openStorage(ctx context.Context, cfg *config.Config, o storageOptions) (storage, error) {
	if cfg.Server.Database == "" {
		store, err := sqlstore.OpenSQLite(ctx, filepath.Join(cfg.Server.DataDir, "lapse.db"))
		if err != nil {
			return storage{}, fmt.Errorf("open store: %w", err)
		}
		return storage{store: store, keys: keyfile.Dir(cfg.Server.DataDir), owner: "local"}, nil
	}
	if len(o.secretKey) == 0 {
		return storage{}, fmt.Errorf("server.database needs a secret key (%s)", secretKeyHint)
	}
	box, err := seal.New(o.secretKey)
	if err != nil {
		return storage{}, err
	}
	store, err := sqlstore.OpenPostgres(ctx, cfg.Server.Database, sqlstore.PostgresOptions{})
	if err != nil {
		return storage{}, err
	}
	keys, err := store.Keys(box)
	if err != nil {
		return storage{}, errors.Join(err, store.Close())
	}
	l, err := store.Listener()
	if err != nil {
		return storage{}, errors.Join(err, store.Close())
	}
	return storage{store: store, keys: keys, listener: l, owner: o.replica}, nil
}
