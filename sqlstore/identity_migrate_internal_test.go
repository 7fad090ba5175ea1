package sqlstore

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/lapse-access/lapse"
)

// TestIdentityMigrations applies the identity migrations (00010 to 00012)
// over a database holding data, takes them down again and back up: the
// data of earlier migrations survives each step and the new tables work.
func TestIdentityMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lapse.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fsys, err := sqliteDialect.migrations()
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys, goose.WithDisableGlobalRegistry(true), goose.WithSlog(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 9); err != nil {
		t.Fatal(err)
	}
	seed := `INSERT INTO devices (id, owner, managed, disk_encrypted, os_up_to_date, reported_at, source) VALUES ('laptop-1', 'alice', 1, 1, 1, 1, 'mdm')`
	if _, err := db.ExecContext(ctx, seed); err != nil {
		t.Fatal(err)
	}
	survives := func(step string) {
		t.Helper()
		var owner string
		if err := db.QueryRowContext(ctx, `SELECT owner FROM devices WHERE id = 'laptop-1'`).Scan(&owner); err != nil || owner != "alice" {
			t.Fatalf("%s: seeded device = %q, %v", step, owner, err)
		}
	}
	tables := func(want bool, step string) {
		t.Helper()
		for _, name := range []string{"sessions", "identities", "service_accounts", "pending_logins", "login_codes"} {
			var n int
			if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, name).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if (n == 1) != want {
				t.Errorf("%s: table %s exists: %v, want %v", step, name, n == 1, want)
			}
		}
	}
	tables(false, "before")
	if _, err := p.UpTo(ctx, 12); err != nil {
		t.Fatal(err)
	}
	survives("up")
	tables(true, "up")
	if _, err := p.DownTo(ctx, 9); err != nil {
		t.Fatal(err)
	}
	survives("down")
	tables(false, "down")
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	survives("up again")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		return tx.CreateSession(ctx, lapse.Session{ID: "s1", TokenHash: "t", RefreshHash: "r", User: "alice", Client: "cli",
			CreatedAt: now, ExpiresAt: now.Add(time.Hour), RefreshExpiresAt: now.Add(time.Hour)})
	})
	if err != nil {
		t.Fatalf("a session after the migrations: %v", err)
	}
	if d, err := s.GetDevice(ctx, "laptop-1"); err != nil || d.Owner != "alice" {
		t.Errorf("device through the store: %+v, %v", d, err)
	}
}
