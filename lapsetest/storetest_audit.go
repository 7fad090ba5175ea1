package lapsetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/auditlog"
)

// checkTree checks that the store's audit tree is the tree of its records.
func checkTree(t *testing.T, s lapse.Store, wantSize int64) {
	t.Helper()
	ctx := t.Context()
	tree, err := auditlog.NewTree(lapse.AuditTree{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ScanAudit(ctx, func(ev lapse.AuditEvent) error { return tree.Append(ev.Hash) }); err != nil {
		t.Fatal(err)
	}
	st, err := s.AuditTree(ctx)
	if err != nil {
		t.Fatalf("AuditTree: %v", err)
	}
	root, err := auditlog.RootOf(st)
	if err != nil {
		t.Fatalf("stored tree: %v", err)
	}
	if st.Size != wantSize || tree.Size() != wantSize || st.Head != tree.Head() || !bytes.Equal(root, tree.Root()) {
		t.Errorf("stored tree: size %d, head %q; records: %d, head %q, roots equal %v; want size %d",
			st.Size, st.Head, tree.Size(), tree.Head(), bytes.Equal(root, tree.Root()), wantSize)
	}
}

func testAuditTree(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	checkTree(t, s, 0)
	appendAudit(t, s, event(lapse.EvRequested, "alice", "db", "r1", 0), event(lapse.EvApproved, "bob", "db", "r1", time.Second))
	checkTree(t, s, 2)
	err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.AppendAudit(ctx, event("x", "a", "b", "c", 2*time.Second)); err != nil {
			return err
		}
		st, err := tx.AuditTree(ctx)
		if err != nil {
			return err
		}
		if st.Size != 3 {
			t.Errorf("AuditTree in the transaction: size %d, want 3 (its own append counts)", st.Size)
		}
		return errTest
	})
	if !errors.Is(err, errTest) {
		t.Fatalf("Tx returned %v", err)
	}
	checkTree(t, s, 2)
	for i := range 5 {
		appendAudit(t, s, event(lapse.EvActivity, "alice", "db", "r1", time.Duration(10+i)*time.Second))
	}
	checkTree(t, s, 7)
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		st, err := tx.AuditTree(ctx)
		if err != nil {
			return err
		}
		if st.Size != 7 {
			t.Errorf("AuditTree in a transaction that appends nothing: size %d, want 7", st.Size)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, s, 7)
}

// testAuditTreeConcurrent appends from several goroutines: one sequence,
// no gaps, no forks.
func testAuditTreeConcurrent(t *testing.T, s lapse.Store) {
	const workers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ev := event(lapse.EvActivity, fmt.Sprintf("u%d", w), "db", "r1", time.Duration(i)*time.Second)
				err := s.Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error { return tx.AppendAudit(ctx, ev, ev) })
				if err != nil && !errors.Is(err, lapse.ErrConflict) {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n := verifyChain(t, s)
	if n%2 != 0 || n == 0 {
		t.Errorf("%d records, want pairs", n)
	}
	checkTree(t, s, n)
}

func testCheckpoints(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	if _, err := s.LatestCheckpoint(ctx); !errors.Is(err, lapse.ErrNotFound) {
		t.Errorf("LatestCheckpoint of none: %v, want not found", err)
	}
	root := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	c3 := lapse.Checkpoint{Size: 3, Root: root(3), Time: t0, Note: []byte("note 3\n")}
	c5 := lapse.Checkpoint{Size: 5, Root: root(5), Time: t0.Add(time.Minute), Note: []byte("note 5\n")}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error { return tx.AddCheckpoint(ctx, c5) })
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error { return tx.AddCheckpoint(ctx, c3) })
	err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		return tx.AddCheckpoint(ctx, lapse.Checkpoint{Size: 5, Root: root(6), Time: t0, Note: []byte("other")})
	})
	wantErr(t, "AddCheckpoint of a size stored", err, lapse.ErrConflict)
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		return tx.AddCheckpoint(ctx, lapse.Checkpoint{Size: 7, Root: root(7), Time: t0})
	})
	wantErr(t, "AddCheckpoint without a note", err, lapse.ErrInvalid)
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.AddCheckpoint(ctx, lapse.Checkpoint{Size: 9, Root: root(9), Time: t0, Note: []byte("9")}); err != nil {
			return err
		}
		return errTest
	})
	if !errors.Is(err, errTest) {
		t.Fatal(err)
	}

	all, err := s.ListCheckpoints(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]lapse.Checkpoint{c3, c5}, all, cmpOpts...); diff != "" {
		t.Errorf("ListCheckpoints (-want +got):\n%s", diff)
	}
	from4, err := s.ListCheckpoints(ctx, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(from4) != 1 || from4[0].Size != 5 {
		t.Errorf("ListCheckpoints from 4: %+v, want the one of 5", from4)
	}
	one, err := s.ListCheckpoints(ctx, 0, 1)
	if err != nil || len(one) != 1 || one[0].Size != 3 {
		t.Errorf("ListCheckpoints limit 1: %+v, %v", one, err)
	}
	latest, err := s.LatestCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c5, latest, cmpOpts...); diff != "" {
		t.Errorf("LatestCheckpoint (-want +got):\n%s", diff)
	}
}

func testScanAuditFrom(t *testing.T, s lapse.Store) {
	var evs []lapse.AuditEvent
	for i := range 1200 {
		evs = append(evs, event(lapse.EvActivity, "alice", "db", "r1", time.Duration(i)*time.Millisecond))
	}
	appendAudit(t, s, evs...)
	var got []int64
	err := s.ScanAuditFrom(t.Context(), 1000, func(ev lapse.AuditEvent) error {
		got = append(got, ev.Seq)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 200 || got[0] != 1001 || got[199] != 1200 {
		t.Errorf("ScanAuditFrom(1000): %d records from %v", len(got), got[:min(3, len(got))])
	}
	var n int
	err = s.ScanAuditFrom(t.Context(), 0, func(ev lapse.AuditEvent) error {
		n++
		if n == 600 {
			return errTest
		}
		return nil
	})
	if !errors.Is(err, errTest) || n != 600 {
		t.Errorf("ScanAuditFrom stopped after %d with %v, want the function's error after 600", n, err)
	}
}
