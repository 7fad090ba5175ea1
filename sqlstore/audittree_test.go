package sqlstore_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/auditlog"
	"github.com/lapse-access/lapse/sqlstore"
)

// TestAuditTreeBuiltForAnOlderLog opens a database whose log was written
// before the tree existed (no tree row) and checks that the store builds
// the tree from the records and goes on appending to it.
func TestAuditTreeBuiltForAnOlderLog(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "lapse.db")
	s, err := sqlstore.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	r := lapse.Request{ID: "r1", User: "alice", Resource: "db", Role: "read", State: lapse.StateActive}
	add := func(s *sqlstore.Store, n int) {
		t.Helper()
		for i := range n {
			ev := lapse.NewAuditEvent(lapse.EvActivity, "lapse", lapse.StateActive, r, map[string]int{"i": i}, now)
			if err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.AppendAudit(ctx, ev) }); err != nil {
				t.Fatal(err)
			}
		}
	}
	add(s, 7)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := rawDB(t, path).ExecContext(ctx, "DELETE FROM audit_tree"); err != nil {
		t.Fatal(err)
	}

	s, err = sqlstore.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	add(s, 3)
	tree, _ := auditlog.NewTree(lapse.AuditTree{})
	if err := s.ScanAudit(ctx, func(ev lapse.AuditEvent) error { return tree.Append(ev.Hash) }); err != nil {
		t.Fatal(err)
	}
	st, err := s.AuditTree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := auditlog.RootOf(st)
	if st.Size != 10 || tree.Size() != 10 || !bytes.Equal(root, tree.Root()) || st.Head != tree.Head() {
		t.Errorf("tree after reopening: size %d (records %d), roots equal %v", st.Size, tree.Size(), bytes.Equal(root, tree.Root()))
	}
}
