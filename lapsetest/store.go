package lapsetest

import (
	"path/filepath"
	"testing"

	"github.com/lapse-access/lapse/sqlstore"
)

// OpenStore opens an embedded SQLite store in a temporary directory of t,
// closed when t ends.
func OpenStore(t testing.TB) *sqlstore.Store {
	t.Helper()
	st, err := sqlstore.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "lapse.db"))
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
