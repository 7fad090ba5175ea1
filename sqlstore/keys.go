package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lapse-access/lapse"
)

// Keys is a [lapse.KeyStore] in the database, for servers that share it:
// each key is sealed under its name with the sealer, whose key every
// server has, so the database never holds a key in clear and a sealed key
// cannot be passed off under another name.
type Keys struct {
	s      *Store
	sealer lapse.Sealer
}

var _ lapse.KeyStore = (*Keys)(nil)

// Keys returns the store's key store, sealing with sealer. Only a store
// that several servers share has one (PostgreSQL); an embedded store's
// server keeps its keys in its data directory.
func (s *Store) Keys(sealer lapse.Sealer) (*Keys, error) {
	if s.d.singleWriter {
		return nil, errors.New("keys in the database: only a shared (PostgreSQL) store keeps them")
	}
	if sealer == nil {
		return nil, errors.New("keys in the database: no sealer")
	}
	return &Keys{s: s, sealer: sealer}, nil
}

// keyAAD binds a sealed key to its name.
func keyAAD(name string) []byte { return []byte("lapse shared key\x00" + name) }

// LoadOrCreate returns the key stored under name, creating it with create
// if there is none. When servers race, the first to store wins and all
// get its key.
func (k *Keys) LoadOrCreate(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
	if name == "" {
		return nil, lapse.Invalidf("shared key: no name")
	}
	if b, err := k.load(ctx, name); err == nil || !errors.Is(err, lapse.ErrNotFound) {
		return b, err
	}
	b, err := create()
	if err != nil {
		return nil, err
	}
	sealed, err := k.sealer.Seal(b, keyAAD(name))
	if err != nil {
		return nil, fmt.Errorf("seal shared key %s: %w", name, err)
	}
	_, err = k.s.wdb.ExecContext(ctx, k.s.d.sql(`INSERT INTO shared_keys (name, value, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO NOTHING`), name, sealed, time.Now().UnixNano())
	if err != nil {
		return nil, fmt.Errorf("store shared key %s: %w", name, err)
	}
	return k.load(ctx, name)
}

// load returns the key stored under name, opened, or an error matching
// [lapse.ErrNotFound].
func (k *Keys) load(ctx context.Context, name string) ([]byte, error) {
	var sealed []byte
	err := k.s.wdb.QueryRowContext(ctx, k.s.d.sql(`SELECT value FROM shared_keys WHERE name = ?`), name).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lapse.NotFoundf("no shared key %s", name)
	}
	if err != nil {
		return nil, fmt.Errorf("read shared key %s: %w", name, err)
	}
	b, err := k.sealer.Open(sealed, keyAAD(name))
	if err != nil {
		// Another secret key than the one the key was sealed with.
		return nil, fmt.Errorf("open shared key %s: %w (is this server configured with the same secret key as the others?)", name, err)
	}
	return b, nil
}
