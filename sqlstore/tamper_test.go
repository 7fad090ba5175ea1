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
		// Reads join the text columns with U+001F between them: a
		// separator moved into a column must not read back as before.
		{"move a column into another", "audit_no_update", "UPDATE audit SET type = type || char(31) || actor, actor = '' WHERE seq = 3", 3},
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

// TestAuditSeparatorInFields stores records whose text fields hold the
// character that reads join the text columns with, and reads them back
// intact, by page, by filter and in a scan.
func TestAuditSeparatorInFields(t *testing.T) {
	ctx := t.Context()
	s, err := sqlstore.OpenSQLite(ctx, filepath.Join(t.TempDir(), "lapse.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	var want []lapse.AuditEvent
	for i, actor := range []string{"alice", "a\x1fb", "\x1f", "bob", "\x1f\x1f\x1f\x1f\x1f\x1f\x1f\x1f\x1f\x1f"} {
		r := lapse.Request{ID: "r\x1f1", User: "alice", Resource: "db", Role: "read", State: lapse.StateActive}
		ev := lapse.NewAuditEvent(lapse.EvActivity, actor, lapse.StateActive, r, map[string]int{"i": i}, now.Add(time.Duration(i)*time.Second))
		if err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.AppendAudit(ctx, ev) }); err != nil {
			t.Fatal(err)
		}
		want = append(want, ev)
	}
	check := func(name string, got []lapse.AuditEvent) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d records, want %d", name, len(got), len(want))
		}
		for i, ev := range got {
			w := want[i]
			if ev.Seq != int64(i+1) || ev.Actor != w.Actor || ev.RequestID != w.RequestID || ev.User != w.User ||
				ev.Type != w.Type || !ev.Time.Equal(w.Time) || string(ev.Data) != string(w.Data) || len(ev.Hash) != 64 {
				t.Errorf("%s: record %d reads back as %+v, want %+v", name, i+1, ev, w)
			}
		}
	}
	list, err := s.ListAudit(ctx, lapse.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	check("list", list)
	byRequest, err := s.ListAudit(ctx, lapse.AuditFilter{RequestID: "r\x1f1"})
	if err != nil {
		t.Fatal(err)
	}
	check("list by request", byRequest)
	var (
		scanned []lapse.AuditEvent
		v       lapse.ChainVerifier
	)
	err = s.ScanAudit(ctx, func(ev lapse.AuditEvent) error {
		scanned = append(scanned, ev)
		return v.Add(ev)
	})
	if err != nil {
		t.Fatal(err)
	}
	check("scan", scanned)
}
