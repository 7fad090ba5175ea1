package sqlstore

import (
	"context"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
)

// TestPostgresSealOrphans leaves audit records committed in audit_pending
// with no seal, as a server that stopped between its commit and the seal
// would: the log does not hold them until a seal, and the next server to
// open the store seals them after the records before them, in order, and
// finds where they went.
func TestPostgresSealOrphans(t *testing.T) {
	ctx := t.Context()
	srv := pgtest.Shared(t)
	dsn := srv.AdminDSNFor(srv.CreateDatabase(t))
	s, err := OpenPostgres(ctx, dsn, PostgresOptions{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	r := lapse.Request{ID: "r1", User: "alice", Resource: "db", Role: "read", State: lapse.StatePending, CreatedAt: t0}
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.CreateRequest(ctx, &r); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvRequested, "alice", "", r, nil, t0))
	})
	if err != nil {
		t.Fatal(err)
	}

	orphans := []lapse.AuditEvent{
		lapse.NewAuditEvent(lapse.EvApproved, "bob", "", r, nil, t0.Add(time.Second)),
		lapse.NewAuditEvent(lapse.EvProvisioned, "lapse", "", r, nil, t0.Add(2*time.Second)),
		lapse.NewAuditEvent(lapse.EvRevoked, "carol", "", r, nil, t0.Add(3*time.Second)),
	}
	args, err := appendArgs(orphans)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	rows, err := s.wdb.QueryContext(ctx, insertPendingSQL, args...)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if evs, err := s.ListAudit(ctx, lapse.AuditFilter{}); err != nil || len(evs) != 1 {
		t.Fatalf("before a seal the log holds %d records (%v), want 1", len(evs), err)
	}

	other, err := OpenPostgres(ctx, dsn, PostgresOptions{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	evs, err := other.ListAudit(ctx, lapse.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 4 {
		t.Fatalf("after opening, the log holds %d records, want 4", len(evs))
	}
	var v lapse.ChainVerifier
	for i, ev := range evs {
		if err := v.Add(ev); err != nil {
			t.Fatalf("record %d: %v", i+1, err)
		}
		if i > 0 && ev.Type != orphans[i-1].Type {
			t.Errorf("record %d is %q, want %q", i+1, ev.Type, orphans[i-1].Type)
		}
	}
	if tree, err := other.AuditTree(ctx); err != nil || tree.Size != 4 || tree.Head != evs[3].Hash {
		t.Errorf("tree after the seal: %+v, %v; want 4 records up to %s", tree, err, evs[3].Hash)
	}

	// A server whose records another sealed finds them.
	got, err := s.sealer.seal(ctx, ids, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if at := got[id]; at.seq != int64(i+2) || at.hash != evs[i+1].Hash || at.prev != evs[i].Hash {
			t.Errorf("pending record %d found at %+v, want seq %d", id, at, i+2)
		}
	}
	if got, err := s.sealer.seal(ctx, ids, 4); err != nil || len(got) != 0 {
		t.Errorf("records sealed before since were found: %v, %v", got, err)
	}
}
