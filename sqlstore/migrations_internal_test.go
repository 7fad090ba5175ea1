package sqlstore

import (
	"database/sql"
	"io/fs"
	"log/slog"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/lapse-access/lapse/lapsetest/pgtest"
)

// TestMigrationsMirror keeps the two dialects' migrations in step: the same
// files, by number and name, so that each SQLite migration has its
// PostgreSQL port.
func TestMigrationsMirror(t *testing.T) {
	names := func(d *dialect) []string {
		fsys, err := d.migrations()
		if err != nil {
			t.Fatal(err)
		}
		m, err := fs.Glob(fsys, "*.sql")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(m)
		return m
	}
	lite, pg := names(sqliteDialect), names(postgresDialect)
	if !slices.Equal(lite, pg) {
		t.Errorf("migrations differ:\nsqlite   %v\npostgres %v", lite, pg)
	}
}

// TestPostgresMigrationsDownUp applies every PostgreSQL migration, takes
// them all back and applies them again.
func TestPostgresMigrationsDownUp(t *testing.T) {
	ctx := t.Context()
	srv := pgtest.Shared(t)
	cfg, err := stdlibConfig(srv.AdminDSNFor(srv.CreateDatabase(t)))
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	p := provider(t, db)
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up: %v", err)
	}
	if _, err := p.DownTo(ctx, 0); err != nil {
		t.Fatalf("down: %v", err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("up again: %v", err)
	}
	var n int64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM audit_checkpoints`).Scan(&n); err != nil || n != 0 {
		t.Errorf("checkpoints after up: %d, %v", n, err)
	}
}

func provider(t *testing.T, db *sql.DB) *goose.Provider {
	t.Helper()
	fsys, err := postgresDialect.migrations()
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
