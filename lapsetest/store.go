package lapsetest

import (
	"path/filepath"
	"testing"

	"github.com/lapse-access/lapse/lapsetest/pgtest"
	"github.com/lapse-access/lapse/sqlstore"
)

// OpenStore opens an embedded SQLite store in a temporary directory of t,
// closed when t ends.
func OpenStore(t testing.TB) *sqlstore.Store {
	t.Helper()
	st, err := sqlstore.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "lapse.db"))
	return closedAtEnd(t, st, err)
}

// OpenPostgresStore opens a store on a new database of the package's
// shared PostgreSQL server ([pgtest.Shared]; the package's TestMain must
// call [pgtest.Main] or [pgtest.MainNoLeaks]), closed when t ends.
func OpenPostgresStore(t testing.TB) *sqlstore.Store {
	t.Helper()
	srv := pgtest.Shared(t)
	st, err := sqlstore.OpenPostgres(t.Context(), srv.AdminDSNFor(srv.CreateDatabase(t)), sqlstore.PostgresOptions{MaxConns: 4})
	return closedAtEnd(t, st, err)
}

// closedAtEnd fails t if the store did not open, and otherwise closes it
// when t ends.
func closedAtEnd(t testing.TB, st *sqlstore.Store, err error) *sqlstore.Store {
	t.Helper()
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}
