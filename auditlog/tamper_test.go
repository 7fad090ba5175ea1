package auditlog_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/auditlog"
	"github.com/lapse-access/lapse/sqlstore"
)

// fixture is an embedded store with an audit log, the Log on it, and the
// raw database file for tampering.
type fixture struct {
	path  string
	store *sqlstore.Store
	log   *auditlog.Log
	key   string
	db    *sql.DB
	n     int
}

var t0 = time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "lapse.db")
	s, err := sqlstore.OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	k, err := auditlog.LoadOrCreateFileKey(filepath.Join(dir, "audit.key"), "lapse/test")
	if err != nil {
		t.Fatal(err)
	}
	vkey, _ := k.VerifierKey(t.Context())
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &fixture{path: path, store: s, key: vkey, db: db,
		log: &auditlog.Log{Store: s, Keys: k, Clock: fixedClock{t0.Add(time.Hour)}}}
}

type fixedClock struct{ t time.Time }

func (c fixedClock) Now() time.Time                       { return c.t }
func (c fixedClock) NewTimer(d time.Duration) lapse.Timer { panic("not used") }

func (f *fixture) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	if _, err := f.db.ExecContext(t.Context(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// add appends n records, one transaction each, with data that has
// characters JSON encoders like to escape.
func (f *fixture) add(t *testing.T, n int) {
	t.Helper()
	for range n {
		f.n++
		r := lapse.Request{ID: fmt.Sprintf("r%d", f.n%3), User: []string{"alice", "bob"}[f.n%2], Resource: "db", Role: "read", State: lapse.StateActive}
		ev := lapse.NewAuditEvent(lapse.EvActivity, "lapse", lapse.StateActive, r,
			map[string]any{"i": f.n, "query": "SELECT * FROM t WHERE a < 1 && b > 2 -- é"}, t0.Add(time.Duration(f.n)*time.Second))
		if err := f.store.Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error { return tx.AppendAudit(ctx, ev) }); err != nil {
			t.Fatal(err)
		}
	}
}

func (f *fixture) checkpoint(t *testing.T) lapse.Checkpoint {
	t.Helper()
	c, err := f.log.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rewrite changes record seq's actor and recomputes the chain from it to
// the end, as an attacker who knows the format would.
func (f *fixture) rewrite(t *testing.T, seq int64) {
	t.Helper()
	evs, err := f.store.ListAudit(t.Context(), lapse.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	prev := ""
	for _, ev := range evs {
		if ev.Seq >= seq {
			if ev.Seq == seq {
				ev.Actor = "mallory"
			}
			ev.Hash = ev.ComputeHash(prev)
			f.exec(t, "UPDATE audit SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?", ev.Actor, prev, ev.Hash, ev.Seq)
		}
		prev = ev.Hash
	}
}

// appendRaw inserts a well-formed record after the last one, behind
// Lapse's back.
func (f *fixture) appendRaw(t *testing.T) {
	t.Helper()
	evs, err := f.store.ListAudit(t.Context(), lapse.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	ev := lapse.AuditEvent{Seq: last.Seq + 1, Time: last.Time.Add(time.Second), Type: lapse.EvApproved, Actor: "mallory"}
	ev.PrevHash, ev.Hash = last.Hash, ev.ComputeHash(last.Hash)
	f.exec(t, `INSERT INTO audit (seq, time, type, actor, request_id, user_name, resource, role, from_state, to_state, data, prev_hash, hash)
		VALUES (?, ?, ?, ?, '', '', '', '', '', '', NULL, ?, ?)`, ev.Seq, ev.Time.UnixNano(), ev.Type, ev.Actor, ev.PrevHash, ev.Hash)
}

func chainSeq(t *testing.T, err error) int64 {
	t.Helper()
	var ce *lapse.ChainError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *lapse.ChainError", err)
	}
	return ce.Seq
}

// TestTamperDatabase edits, deletes, inserts and reorders rows in the
// SQLite file and checks that the server's verification and the offline
// verification of an export both name the first bad record.
func TestTamperDatabase(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, f *fixture)
		// seq is the first bad record the server's verification names;
		// exported, that of the offline verification (0: the export is
		// unaffected, since it holds only what Lapse appended).
		seq, exported int64
	}{
		{"edit actor", func(t *testing.T, f *fixture) { f.exec(t, "UPDATE audit SET actor = 'mallory' WHERE seq = 3") }, 3, 3},
		{"edit time", func(t *testing.T, f *fixture) { f.exec(t, "UPDATE audit SET time = time + 1 WHERE seq = 4") }, 4, 4},
		{"edit data after the first checkpoint", func(t *testing.T, f *fixture) {
			f.exec(t, `UPDATE audit SET data = CAST('{"i":7}' AS BLOB) WHERE seq = 7`)
		}, 7, 7},
		{"delete", func(t *testing.T, f *fixture) { f.exec(t, "DELETE FROM audit WHERE seq = 2") }, 2, 2},
		{"delete the newest", func(t *testing.T, f *fixture) { f.exec(t, "DELETE FROM audit WHERE seq = 10") }, 10, 10},
		{"delete the newest two", func(t *testing.T, f *fixture) { f.exec(t, "DELETE FROM audit WHERE seq >= 9") }, 9, 9},
		{"delete the newest, not yet signed", func(t *testing.T, f *fixture) {
			f.add(t, 2)
			f.exec(t, "DELETE FROM audit WHERE seq = 12")
		}, 12, 12},
		{"insert", func(t *testing.T, f *fixture) {
			f.exec(t, "UPDATE audit SET seq = seq + 1000 WHERE seq >= 6")
			f.exec(t, "UPDATE audit SET seq = seq - 999 WHERE seq >= 1000")
			f.exec(t, `INSERT INTO audit SELECT 6, time, type, 'mallory', request_id, user_name, resource, role, from_state, to_state, data, prev_hash, hash FROM audit WHERE seq = 5`)
		}, 6, 6},
		{"insert after the newest", func(t *testing.T, f *fixture) { f.appendRaw(t) }, 11, 0},
		{"reorder", func(t *testing.T, f *fixture) {
			f.exec(t, "UPDATE audit SET seq = -1 WHERE seq = 3")
			f.exec(t, "UPDATE audit SET seq = 3 WHERE seq = 4")
			f.exec(t, "UPDATE audit SET seq = 4 WHERE seq = -1")
		}, 3, 3},
		{"rewrite with the chain recomputed", func(t *testing.T, f *fixture) { f.rewrite(t, 6) }, 5, 5},
		{"rewrite after the last checkpoint", func(t *testing.T, f *fixture) {
			f.add(t, 2)
			f.rewrite(t, 12)
		}, 11, 11},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.add(t, 4)
			f.checkpoint(t)
			f.add(t, 6)
			f.checkpoint(t)
			if _, err := f.log.Verify(t.Context()); err != nil {
				t.Fatalf("untouched log: %v", err)
			}
			f.exec(t, "DROP TRIGGER audit_no_update")
			f.exec(t, "DROP TRIGGER audit_no_delete")
			tc.tamper(t, f)

			_, err := f.log.Verify(t.Context())
			if got := chainSeq(t, err); got != tc.seq {
				t.Errorf("server verify: first bad record %d, want %d (%v)", got, tc.seq, err)
			}

			var buf bytes.Buffer
			if err := f.log.Export(t.Context(), &buf, time.Time{}); err != nil {
				t.Fatalf("export: %v", err)
			}
			_, _, err = auditlog.VerifyExport(&buf, f.key)
			if tc.exported == 0 {
				if err != nil {
					t.Errorf("offline verify: %v, want no error", err)
				}
				return
			}
			if got := chainSeq(t, err); got != tc.exported {
				t.Errorf("offline verify: first bad record %d, want %d (%v)", got, tc.exported, err)
			}
		})
	}
}

// TestTamperCheckpoints forges and re-signs checkpoints.
func TestTamperCheckpoints(t *testing.T) {
	f := newFixture(t)
	f.add(t, 5)
	f.checkpoint(t)
	f.exec(t, "DROP TRIGGER audit_checkpoints_no_update")
	f.exec(t, `UPDATE audit_checkpoints SET note = replace(note, char(10) || '5' || char(10), char(10) || '4' || char(10))`)
	_, err := f.log.Verify(t.Context())
	var cpe *auditlog.CheckpointError
	if !errors.As(err, &cpe) {
		t.Fatalf("forged checkpoint: got %v, want a *auditlog.CheckpointError", err)
	}

	// A checkpoint signed by another key is not one of this log.
	g := newFixture(t)
	g.add(t, 5)
	g.checkpoint(t)
	var buf bytes.Buffer
	if err := g.log.Export(t.Context(), &buf, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := auditlog.VerifyExport(bytes.NewReader(buf.Bytes()), f.key); !errors.As(err, &cpe) {
		t.Errorf("export verified with another log's key: got %v, want a *auditlog.CheckpointError", err)
	}
	other, err := auditlog.LoadOrCreateFileKey(filepath.Join(t.TempDir(), "k"), "lapse/test")
	if err != nil {
		t.Fatal(err)
	}
	okey, _ := other.VerifierKey(t.Context())
	if _, _, err := auditlog.VerifyExport(bytes.NewReader(buf.Bytes()), okey); !errors.As(err, &cpe) {
		t.Errorf("export verified with another key of the same origin: got %v, want a *auditlog.CheckpointError", err)
	}
	if _, _, err := auditlog.VerifyExport(bytes.NewReader(buf.Bytes()), g.key); err != nil {
		t.Errorf("export verified with its key: %v", err)
	}
}

// TestTamperExportFile edits, deletes, inserts and reorders lines of an
// export file.
func TestTamperExportFile(t *testing.T) {
	f := newFixture(t)
	f.add(t, 4)
	f.checkpoint(t)
	f.add(t, 6)
	var buf bytes.Buffer
	if err := f.log.Export(t.Context(), &buf, time.Time{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(strings.TrimSuffix(buf.String(), "\n"), "\n")
	// lines[0] is the header, 1 and 2 the checkpoints (4 and 10), then the
	// records 1 to 10.
	rec := func(seq int) int { return 2 + seq }
	tests := []struct {
		name string
		edit func(ls []string) []string
		seq  int64
	}{
		{"untouched", func(ls []string) []string { return ls }, 0},
		{"edit", func(ls []string) []string {
			ls[rec(3)] = strings.Replace(ls[rec(3)], `"actor":"lapse"`, `"actor":"mallory"`, 1)
			return ls
		}, 3},
		{"edit data whitespace", func(ls []string) []string {
			ls[rec(5)] = strings.Replace(ls[rec(5)], `"data":{"i":5`, `"data":{"i": 5`, 1)
			return ls
		}, 5},
		{"delete", func(ls []string) []string { return append(ls[:rec(2)], ls[rec(3):]...) }, 2},
		{"delete the last", func(ls []string) []string { return ls[:rec(10)] }, 10},
		{"insert", func(ls []string) []string {
			return append(ls[:rec(6)], append([]string{ls[rec(5)]}, ls[rec(6):]...)...)
		}, 6},
		{"reorder", func(ls []string) []string {
			ls[rec(3)], ls[rec(4)] = ls[rec(4)], ls[rec(3)]
			return ls
		}, 3},
		{"drop the checkpoints", func(ls []string) []string { return append(ls[:1], ls[3:]...) }, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ls := tc.edit(append([]string(nil), lines...))
			res, _, err := auditlog.VerifyExport(strings.NewReader(strings.Join(ls, "")), f.key)
			if tc.seq == 0 {
				if err != nil || res.Records != 10 || res.Signed != 10 || res.Checkpoints != 2 {
					t.Fatalf("untouched export: %+v, %v", res, err)
				}
				return
			}
			if got := chainSeq(t, err); got != tc.seq {
				t.Errorf("first bad record %d, want %d (%v)", got, tc.seq, err)
			}
		})
	}
}

// TestExportSince verifies a part of the log, from a time on.
func TestExportSince(t *testing.T) {
	f := newFixture(t)
	f.add(t, 4)
	f.checkpoint(t)
	f.add(t, 6)
	var buf bytes.Buffer
	if err := f.log.Export(t.Context(), &buf, t0.Add(6*time.Second)); err != nil {
		t.Fatal(err)
	}
	res, h, err := auditlog.VerifyExport(bytes.NewReader(buf.Bytes()), f.key)
	if err != nil {
		t.Fatal(err)
	}
	if res.First != 6 || res.Records != 5 || h.Start.Size != 5 {
		t.Errorf("export since record 6: %+v, start %d", res, h.Start.Size)
	}
	// A start that is not the log's cannot match the checkpoint.
	first, rest, _ := bytes.Cut(buf.Bytes(), []byte("\n"))
	var hl struct {
		Header auditlog.ExportHeader `json:"header"`
	}
	if err := json.Unmarshal(first, &hl); err != nil {
		t.Fatal(err)
	}
	hl.Header.Start.Hashes[0][0] ^= 1
	forged, _ := json.Marshal(hl)
	forged = append(append(forged, '\n'), rest...)
	if _, _, err := auditlog.VerifyExport(bytes.NewReader(forged), f.key); err == nil {
		t.Error("an export with a forged start verified")
	}
}
