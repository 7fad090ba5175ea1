package sqlstore_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/sqlstore"
)

// TestTampering edits the audit table behind the store's back and checks
// that the chain reports the record.
func TestTampering(t *testing.T) {
	tests := []struct {
		name    string
		trigger string // the trigger that would refuse the edit
		edit    string
		seq     int64 // where the chain must break
	}{
		{"edit", "audit_no_update", "UPDATE audit SET actor = 'mallory' WHERE seq = 3", 3},
		{"edit time", "audit_no_update", "UPDATE audit SET time = time + 1 WHERE seq = 4", 4},
		{"delete", "audit_no_delete", "DELETE FROM audit WHERE seq = 2", 2},
		{"delete last", "audit_no_delete", "DELETE FROM audit WHERE seq = 5", 0},
		{"reorder", "audit_no_update", "UPDATE audit SET seq = -1 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = -1", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "lapse.db")
			s, err := sqlstore.OpenSQLite(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
			r := lapse.Request{ID: "r1", User: "alice", Resource: "db", Role: "read", State: lapse.StatePending}
			for i := range 5 {
				ev := lapse.NewAuditEvent(lapse.EvApprovalAdded, "bob", lapse.StatePending, r, map[string]int{"i": i}, now.Add(time.Duration(i)*time.Second))
				if err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.AppendAudit(ctx, ev) }); err != nil {
					t.Fatal(err)
				}
			}

			db := rawDB(t, path)
			if _, err := db.ExecContext(ctx, tc.edit); err == nil {
				t.Fatalf("the %s trigger let %q through", tc.trigger, tc.edit)
			}
			if _, err := db.ExecContext(ctx, "DROP TRIGGER "+tc.trigger); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, tc.edit); err != nil {
				t.Fatal(err)
			}

			var v lapse.ChainVerifier
			err = s.ScanAudit(ctx, v.Add)
			if tc.seq == 0 {
				// Removing the newest record leaves a valid, shorter chain;
				// signed checkpoints of the head catch that.
				if err != nil || v.Count != 4 {
					t.Errorf("chain: %d records, %v; want 4 and no error", v.Count, err)
				}
				return
			}
			var ce *lapse.ChainError
			if !errors.As(err, &ce) {
				t.Fatalf("ScanAudit returned %v, want a *lapse.ChainError", err)
			}
			if ce.Seq != tc.seq {
				t.Errorf("chain broken at %d, want %d: %v", ce.Seq, tc.seq, ce)
			}
		})
	}
}
