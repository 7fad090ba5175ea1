package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
)

// sealT0 is when the requests of these tests are made.
var sealT0 = time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)

// pendingRequest is a pending request of alice's, made at sealT0.
func pendingRequest(id string) lapse.Request {
	return lapse.Request{ID: id, User: "alice", Resource: "db", Role: "read", State: lapse.StatePending, CreatedAt: sealT0}
}

// openPostgres opens a store on dsn, closed when t ends.
func openPostgres(t *testing.T, dsn string, conns int) *Store {
	t.Helper()
	s, err := OpenPostgres(t.Context(), dsn, PostgresOptions{MaxConns: conns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newDatabase returns the DSN of a new database on the package's shared
// PostgreSQL server.
func newDatabase(t *testing.T) string {
	t.Helper()
	srv := pgtest.Shared(t)
	return srv.AdminDSNFor(srv.CreateDatabase(t))
}

// TestPostgresSealOrphans leaves audit records committed in audit_pending
// with no seal, as a server that stopped between its commit and the seal
// would: the log does not hold them until a seal, and the next server to
// open the store seals them after the records before them, in order, and
// finds where they went.
func TestPostgresSealOrphans(t *testing.T) {
	ctx := t.Context()
	dsn := newDatabase(t)
	s := openPostgres(t, dsn, 4)
	r := pendingRequest("r1")
	err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.CreateRequest(ctx, &r); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvRequested, "alice", "", r, nil, sealT0))
	})
	if err != nil {
		t.Fatal(err)
	}

	orphans := []lapse.AuditEvent{
		lapse.NewAuditEvent(lapse.EvApproved, "bob", "", r, nil, sealT0.Add(time.Second)),
		lapse.NewAuditEvent(lapse.EvProvisioned, "lapse", "", r, nil, sealT0.Add(2*time.Second)),
		lapse.NewAuditEvent(lapse.EvRevoked, "carol", "", r, nil, sealT0.Add(3*time.Second)),
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

	other := openPostgres(t, dsn, 4)
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

// TestPostgresSealRetried holds the audit tree's lock past a seal's
// timeout, so that the seal after a commit fails: the transaction has
// committed and says so, and its record reaches the log once the lock is
// free, without another transaction.
func TestPostgresSealRetried(t *testing.T) {
	old := sealTimeout
	sealTimeout = 300 * time.Millisecond
	t.Cleanup(func() { sealTimeout = old })
	ctx := t.Context()
	s := openPostgres(t, newDatabase(t), 4)
	locker, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := locker.ExecContext(ctx, "SELECT 1 FROM audit_tree WHERE id = 1 FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	r := pendingRequest("r1")
	var stored []lapse.AuditEvent
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.CreateRequest(ctx, &r); err != nil {
			return err
		}
		tx.AfterCommit(func(evs []lapse.AuditEvent) { stored = evs })
		return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvRequested, "alice", "", r, nil, sealT0))
	})
	if err != nil {
		t.Fatalf("Tx after a failed seal: %v, want nil: it committed", err)
	}
	if len(stored) != 1 || stored[0].Seq != 0 {
		t.Fatalf("AfterCommit got %+v, want one record not yet sealed", stored)
	}
	if _, err := s.GetRequest(ctx, "r1"); err != nil {
		t.Fatalf("the committed request: %v", err)
	}
	if err := locker.Rollback(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs, err := s.ListAudit(ctx, lapse.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 1 {
			if evs[0].Type != lapse.EvRequested || evs[0].Seq != 1 {
				t.Errorf("sealed %+v, want the request's record as record 1", evs[0])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the record of a committed transaction did not reach the log after its seal failed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPostgresSealUnderRepeatableRead runs transactions of three stores
// at once on a database whose default isolation is repeatable read: the
// store's own transactions and seals still see what committed before each
// statement, and every record is sealed when its Tx returns.
func TestPostgresSealUnderRepeatableRead(t *testing.T) {
	ctx := t.Context()
	srv := pgtest.Shared(t)
	name := srv.CreateDatabase(t)
	admin := srv.Admin(t, name)
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+name+" SET default_transaction_isolation = 'repeatable read'"); err != nil {
		t.Fatal(err)
	}
	var stores []*Store
	for range 3 {
		stores = append(stores, openPostgres(t, srv.AdminDSNFor(name), 8))
	}
	var wg sync.WaitGroup
	var unsealed atomic.Int64
	for i := range 24 {
		s := stores[i%3]
		wg.Go(func() {
			for j := range 10 {
				r := pendingRequest(fmt.Sprintf("r%d-%d", i, j))
				err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
					if err := tx.CreateRequest(ctx, &r); err != nil {
						return err
					}
					tx.AfterCommit(func(evs []lapse.AuditEvent) {
						if evs[0].Seq == 0 {
							unsealed.Add(1)
						}
					})
					return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvRequested, "alice", "", r, nil, sealT0))
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := unsealed.Load(); n > 0 {
		t.Errorf("%d of 240 transactions returned before their records were sealed", n)
	}
	var v lapse.ChainVerifier
	if err := stores[0].ScanAudit(ctx, v.Add); err != nil || v.Count != 240 {
		t.Errorf("log: %d records, %v; want 240 in one chain", v.Count, err)
	}
}

// TestPostgresMigrationDownSealsPending migrates down past the pending
// table with a record in it: the record goes into the log first.
func TestPostgresMigrationDownSealsPending(t *testing.T) {
	ctx := t.Context()
	s := openPostgres(t, newDatabase(t), 4)
	r := pendingRequest("r1")
	args, err := appendArgs([]lapse.AuditEvent{lapse.NewAuditEvent(lapse.EvRequested, "alice", "", r, nil, sealT0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.ExecContext(ctx, insertPendingSQL, args...); err != nil {
		t.Fatal(err)
	}
	if _, err := provider(t, s.wdb).DownTo(ctx, 15); err != nil {
		t.Fatalf("down to 15: %v", err)
	}
	var n int
	if err := s.wdb.QueryRowContext(ctx, "SELECT count(*) FROM audit").Scan(&n); err != nil || n != 1 {
		t.Errorf("after migrating down the log holds %d records (%v), want 1", n, err)
	}
}

// TestPostgresUpdateOrAbortLosesNoUpdate has another transaction change a
// request after UpdateRequestOrAbort queued a write of it: the queued
// write fails the transaction at commit, and the caller's request keeps
// its Version, so writing it again is a conflict, not an overwrite.
func TestPostgresUpdateOrAbortLosesNoUpdate(t *testing.T) {
	ctx := t.Context()
	s := openPostgres(t, newDatabase(t), 4)
	cur := pendingRequest("r1")
	if err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.CreateRequest(ctx, &cur) }); err != nil {
		t.Fatal(err)
	}
	mine := cur
	err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		mine.Note = "mine"
		if err := tx.UpdateRequestOrAbort(ctx, &mine); err != nil {
			return err
		}
		other := cur
		other.Note = "other"
		return s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.UpdateRequest(ctx, &other) })
	})
	if !errors.Is(err, lapse.ErrConflict) {
		t.Fatalf("Tx = %v, want a conflict", err)
	}
	if mine.Version != cur.Version {
		t.Errorf("Version after the failed transaction = %d, want %d", mine.Version, cur.Version)
	}
	mine.Note = "retry"
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.UpdateRequest(ctx, &mine) })
	if !errors.Is(err, lapse.ErrConflict) {
		t.Errorf("writing the request again = %v, want a conflict", err)
	}
	if got, err := s.GetRequest(ctx, "r1"); err != nil || got.Note != "other" {
		t.Errorf("stored note %q (%v), want the other transaction's", got.Note, err)
	}
}

// TestPostgresGroupCommit has many write-only transactions commit at once,
// some of them with a request id that exists: they are committed in
// groups, each duplicate fails alone with a conflict, every other one
// commits with its record, and the log is one chain.
func TestPostgresGroupCommit(t *testing.T) {
	ctx := t.Context()
	s := openPostgres(t, newDatabase(t), 4)
	taken := pendingRequest("taken")
	if err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.CreateRequest(ctx, &taken) }); err != nil {
		t.Fatal(err)
	}
	const writers, rounds, dupEvery = 32, 10, 7
	var wg sync.WaitGroup
	var committed, conflicts atomic.Int64
	for w := range writers {
		wg.Go(func() {
			for i := range rounds {
				id := fmt.Sprintf("r%d-%d", w, i)
				dup := (w*rounds+i)%dupEvery == 0
				if dup {
					id = "taken"
				}
				r := pendingRequest(id)
				err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
					if err := tx.CreateRequest(ctx, &r); err != nil {
						return err
					}
					return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvRequested, "alice", "", r, nil, sealT0))
				})
				switch {
				case dup && errors.Is(err, lapse.ErrConflict):
					conflicts.Add(1)
				case !dup && err == nil:
					committed.Add(1)
				default:
					t.Errorf("request %s (duplicate %v): %v", id, dup, err)
				}
			}
		})
	}
	wg.Wait()
	wantDup := int64(0)
	for n := range writers * rounds {
		if n%dupEvery == 0 {
			wantDup++
		}
	}
	if conflicts.Load() != wantDup || committed.Load() != writers*rounds-wantDup {
		t.Errorf("%d committed and %d conflicts, want %d and %d", committed.Load(), conflicts.Load(), writers*rounds-wantDup, wantDup)
	}
	var v lapse.ChainVerifier
	if err := s.ScanAudit(ctx, v.Add); err != nil || v.Count != committed.Load() {
		t.Errorf("log: %d records (%v), want %d in one chain", v.Count, err, committed.Load())
	}
	if s.grouper.shared.Load() == 0 {
		t.Error("no two transactions were committed together")
	}
	t.Logf("%d groups of more than one transaction", s.grouper.shared.Load())
}
