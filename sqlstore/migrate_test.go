package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/sqlstore"
)

// rawDB opens the database file directly, bypassing the store.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func countMigrations(t *testing.T, path string) int {
	t.Helper()
	var n int
	if err := rawDB(t, path).QueryRowContext(t.Context(), "SELECT COUNT(*) FROM goose_db_version").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "lapse.db")
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)

	s, err := sqlstore.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := lapse.NewRequest(lapse.Request{ID: "r1", User: "alice", Resource: "db", Role: "read", Reason: "INC-1", Duration: time.Hour}, 1, time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.CreateRequest(ctx, &r); err != nil {
			return err
		}
		if err := tx.PutSecret(ctx, r.ID, []byte("sealed")); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvRequested, "alice", "", r, nil, now))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	applied := countMigrations(t, path)

	s, err = sqlstore.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if n := countMigrations(t, path); n != applied {
		t.Errorf("reopening recorded %d migrations, had %d", n, applied)
	}
	got, err := s.GetRequest(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 || got.User != "alice" || !got.PendingUntil.Equal(r.PendingUntil) {
		t.Errorf("request after reopen: %+v", got)
	}
	// The audit chain continues from what is on disk.
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		sealed, err := tx.TakeSecret(ctx, "r1")
		if err != nil {
			return err
		}
		if string(sealed) != "sealed" {
			t.Errorf("secret after reopen = %q", sealed)
		}
		return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvCredentialsTaken, "alice", r.State, r, nil, now))
	})
	if err != nil {
		t.Fatal(err)
	}
	var v lapse.ChainVerifier
	if err := s.ScanAudit(ctx, v.Add); err != nil || v.Count != 2 {
		t.Errorf("audit chain after reopen: %d records, %v; want 2 and no error", v.Count, err)
	}
}

func TestOpenNewerSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "lapse.db")
	s, err := sqlstore.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rawDB(t, path).ExecContext(ctx, "INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, 1)"); err != nil {
		t.Fatal(err)
	}
	s, err = sqlstore.OpenSQLite(ctx, path)
	if err == nil {
		s.Close()
		t.Fatal("opened a database with a newer schema")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("error does not say the schema is newer: %v", err)
	}
}

func TestOpenRejectsNonFilePaths(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db", "x.db?_txlock=deferred"} {
		s, err := sqlstore.OpenSQLite(t.Context(), path)
		if err == nil {
			s.Close()
			t.Errorf("OpenSQLite(%q) succeeded", path)
			continue
		}
		if !errors.Is(err, lapse.ErrInvalid) {
			t.Errorf("OpenSQLite(%q): %v, want an error matching %v", path, err, lapse.ErrInvalid)
		}
	}
}
