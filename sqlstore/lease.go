package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lapse-access/lapse"
)

// pgNowNanos is PostgreSQL's clock in Unix nanoseconds: leases are judged
// by the database's clock, which every server sharing it reads alike.
const pgNowNanos = `(extract(epoch from clock_timestamp()) * 1000000000)::bigint`

// AcquireLease gives the named lease to owner until ttl from now when it
// is free, expired or owner's already, in one statement, and reports
// whether owner holds it now.
func (s *Store) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	if name == "" || owner == "" || ttl <= 0 {
		return false, lapse.Invalidf("acquire lease: want a name, an owner and a positive duration")
	}
	var query string
	var args []any
	if s.d.singleWriter {
		now := time.Now().UnixNano()
		query = `INSERT INTO leases (name, owner, expires_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
			WHERE leases.owner = excluded.owner OR leases.expires_at < ?
			RETURNING owner`
		args = []any{name, owner, now + int64(ttl), now}
	} else {
		query = `WITH clock AS (SELECT ` + pgNowNanos + ` AS now)
			INSERT INTO leases (name, owner, expires_at) SELECT ?, ?, now + ? FROM clock
			ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
			WHERE leases.owner = excluded.owner OR leases.expires_at < (SELECT now FROM clock)
			RETURNING owner`
		args = []any{name, owner, int64(ttl)}
	}
	var got string
	err := s.writeExec(ctx, func(ctx context.Context, db *sql.DB) error {
		return db.QueryRowContext(ctx, s.d.sql(query), args...).Scan(&got)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return got == owner, nil
}

// ReleaseLease frees the named lease if owner holds it.
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	err := s.writeExec(ctx, func(ctx context.Context, db *sql.DB) error {
		_, err := db.ExecContext(ctx, s.d.sql(`DELETE FROM leases WHERE name = ? AND owner = ?`), name, owner)
		return err
	})
	if err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

// writeExec runs fn on the write pool, one at a time with the store's
// write transactions where the dialect has a single writer.
func (s *Store) writeExec(ctx context.Context, fn func(ctx context.Context, db *sql.DB) error) error {
	if s.writer != nil {
		select {
		case s.writer <- struct{}{}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		defer func() { <-s.writer }()
	}
	return fn(ctx, s.wdb)
}

// writeTx runs fn in a plain transaction on the write pool, outside the
// audit log's bookkeeping, and commits if fn returns nil.
func (s *Store) writeTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	return s.writeExec(ctx, func(ctx context.Context, db *sql.DB) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		if err := fn(ctx, tx); err != nil {
			return s.conflictOr(errors.Join(err, ignoreDone(tx.Rollback())))
		}
		if err := tx.Commit(); err != nil {
			return s.conflictOr(fmt.Errorf("commit: %w", err))
		}
		return nil
	})
}

func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}
