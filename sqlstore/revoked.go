package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/lapse-access/lapse"
)

// neverNanos stands for a ValidBefore that never comes.
const neverNanos = math.MaxInt64

func validBeforeNanos(t time.Time) int64 {
	if t.IsZero() {
		return neverNanos
	}
	return t.UnixNano()
}

func validBeforeTime(n int64) time.Time {
	if n == neverNanos {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// RevokeSerial adds serial to the authority's revocation list, or moves
// its ValidBefore later, and increments the list's version if either
// changed the list.
func (s *Store) RevokeSerial(ctx context.Context, authority string, serial uint64, validBefore, at time.Time) (bool, error) {
	if authority == "" {
		return false, lapse.Invalidf("revoke serial: no authority")
	}
	if serial > math.MaxInt64 {
		return false, lapse.Invalidf("revoke serial: serial %d is above %d", serial, int64(math.MaxInt64))
	}
	vb := validBeforeNanos(validBefore)
	changed := false
	err := s.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		// The list's row is locked first, so that concurrent revocations
		// of one authority count their versions one at a time.
		if _, err := tx.ExecContext(ctx, s.d.sql(`INSERT INTO revocation_lists (authority, version) VALUES (?, 0)
			ON CONFLICT (authority) DO UPDATE SET version = revocation_lists.version`), authority); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.d.sql(`INSERT INTO revoked_serials (authority, serial, valid_before, revoked_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (authority, serial) DO UPDATE SET valid_before = excluded.valid_before
			WHERE revoked_serials.valid_before < excluded.valid_before`),
			authority, int64(serial), vb, at.UnixNano())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if changed = n > 0; changed {
			return s.bumpVersion(ctx, tx, authority)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("revoke serial %d of %s: %w", serial, authority, err)
	}
	return changed, nil
}

func (s *Store) bumpVersion(ctx context.Context, tx *sql.Tx, authority string) error {
	_, err := tx.ExecContext(ctx, s.d.sql(`UPDATE revocation_lists SET version = version + 1 WHERE authority = ?`), authority)
	return err
}

// RevokedSerial returns the listed serial, or an error matching
// [lapse.ErrNotFound].
func (s *Store) RevokedSerial(ctx context.Context, authority string, serial uint64) (lapse.RevokedSerial, error) {
	if serial > math.MaxInt64 {
		return lapse.RevokedSerial{}, lapse.NotFoundf("serial %d is not revoked by %s", serial, authority)
	}
	var vb, at int64
	err := s.rdb.QueryRowContext(ctx, s.d.sql(`SELECT valid_before, revoked_at FROM revoked_serials WHERE authority = ? AND serial = ?`),
		authority, int64(serial)).Scan(&vb, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return lapse.RevokedSerial{}, lapse.NotFoundf("serial %d is not revoked by %s", serial, authority)
	}
	if err != nil {
		return lapse.RevokedSerial{}, fmt.Errorf("read revoked serial %d of %s: %w", serial, authority, err)
	}
	return lapse.RevokedSerial{Serial: serial, ValidBefore: validBeforeTime(vb), RevokedAt: time.Unix(0, at).UTC()}, nil
}

// RevokedSerials returns the authority's list with the serials whose
// ValidBefore is after since, read in one transaction so that the version
// matches the serials.
func (s *Store) RevokedSerials(ctx context.Context, authority string, since time.Time) (lapse.RevocationList, error) {
	var out lapse.RevocationList
	cut := int64(math.MinInt64)
	if !since.IsZero() {
		cut = since.UnixNano()
	}
	opts := &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
	if s.d.singleWriter {
		// SQLite's read transactions are snapshots already.
		opts = &sql.TxOptions{ReadOnly: true}
	}
	tx, err := s.rdb.BeginTx(ctx, opts)
	if err != nil {
		return out, fmt.Errorf("read revocation list %s: %w", authority, err)
	}
	defer tx.Rollback()
	err = tx.QueryRowContext(ctx, s.d.sql(`SELECT version FROM revocation_lists WHERE authority = ?`), authority).Scan(&out.Version)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return out, fmt.Errorf("read revocation list %s: %w", authority, err)
	}
	rows, err := tx.QueryContext(ctx, s.d.sql(`SELECT serial, valid_before, revoked_at FROM revoked_serials
		WHERE authority = ? AND valid_before > ? ORDER BY serial`), authority, cut)
	if err != nil {
		return out, fmt.Errorf("read revocation list %s: %w", authority, err)
	}
	defer rows.Close()
	for rows.Next() {
		var serial, vb, at int64
		if err := rows.Scan(&serial, &vb, &at); err != nil {
			return out, fmt.Errorf("read revocation list %s: %w", authority, err)
		}
		out.Serials = append(out.Serials, lapse.RevokedSerial{Serial: uint64(serial), ValidBefore: validBeforeTime(vb), RevokedAt: time.Unix(0, at).UTC()})
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("read revocation list %s: %w", authority, err)
	}
	return out, nil
}

// RevocationListVersion returns the version of the authority's list, 0 if
// it never changed.
func (s *Store) RevocationListVersion(ctx context.Context, authority string) (int64, error) {
	var v int64
	err := s.rdb.QueryRowContext(ctx, s.d.sql(`SELECT version FROM revocation_lists WHERE authority = ?`), authority).Scan(&v)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read revocation list version %s: %w", authority, err)
	}
	return v, nil
}

// PruneRevokedSerials deletes the serials whose ValidBefore is at or
// before before, and increments the list's version if it deleted any.
func (s *Store) PruneRevokedSerials(ctx context.Context, authority string, before time.Time) (int, error) {
	var n int64
	err := s.writeTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.d.sql(`DELETE FROM revoked_serials WHERE authority = ? AND valid_before <= ?`),
			authority, before.UnixNano())
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		return s.bumpVersion(ctx, tx, authority)
	})
	if err != nil {
		return 0, fmt.Errorf("prune revocation list %s: %w", authority, err)
	}
	return int(n), nil
}
