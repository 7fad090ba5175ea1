package sqlstore_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
	"github.com/lapse-access/lapse/sqlstore"
)

// openSQLite opens a store on a new SQLite file in a temporary directory.
func openSQLite(t testing.TB) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "lapse.db"))
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestSQLite(t *testing.T) {
	lapsetest.TestStore(t, func(t *testing.T) lapse.Store { return openSQLite(t) })
}

func TestMain(m *testing.M) {
	code := pgtest.MainNoLeaks(m)
	removeBigLog()
	os.Exit(code)
}

// openPostgres opens a store on a new database of the package's shared
// PostgreSQL server.
func openPostgres(t testing.TB) *sqlstore.Store {
	t.Helper()
	srv := pgtest.Shared(t)
	s, err := sqlstore.OpenPostgres(t.Context(), srv.AdminDSNFor(srv.CreateDatabase(t)), sqlstore.PostgresOptions{})
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestPostgres(t *testing.T) {
	lapsetest.TestStore(t, func(t *testing.T) lapse.Store { return openPostgres(t) })
}
