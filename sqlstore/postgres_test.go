package sqlstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/auditlog"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
	"github.com/lapse-access/lapse/seal"
	"github.com/lapse-access/lapse/sqlstore"
)

// openServers opens n stores on one new database at the same moment, as n
// servers starting together would: their migrations must not collide.
func openServers(t *testing.T, n int) []*sqlstore.Store {
	t.Helper()
	srv := pgtest.Shared(t)
	dsn := srv.AdminDSNFor(srv.CreateDatabase(t))
	stores := make([]*sqlstore.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			stores[i], errs[i] = sqlstore.OpenPostgres(t.Context(), dsn, sqlstore.PostgresOptions{MaxConns: 8})
		})
	}
	wg.Wait()
	for i, s := range stores {
		if s != nil {
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
		}
		if errs[i] != nil {
			t.Fatalf("OpenPostgres %d: %v", i, errs[i])
		}
	}
	return stores
}

// TestPostgresSeveralServers has three stores on one database append to the
// audit log, claim due requests and update one request at once: the log
// stays one chain without gaps or forks, every due request is claimed by
// exactly one, and every lost race is a conflict.
func TestPostgresSeveralServers(t *testing.T) {
	const (
		servers = 3
		writers = 4 // per server
		txs     = 25
		due     = 300
	)
	ctx := t.Context()
	stores := openServers(t, servers)
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)

	counter := lapse.Request{ID: "counter", User: "system", Resource: "db", Role: "read", State: lapse.StatePending, CreatedAt: now}
	var dueReqs []*lapse.Request
	for i := range due {
		r := lapse.Request{ID: fmt.Sprintf("due-%03d", i), User: "alice", Resource: "db", Role: "read",
			State: lapse.StateRevoking, CreatedAt: now, NextAt: now.Add(-time.Duration(i) * time.Millisecond)}
		dueReqs = append(dueReqs, &r)
	}
	err := stores[0].Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.CreateRequest(ctx, &counter); err != nil {
			return err
		}
		for _, r := range dueReqs {
			if err := tx.CreateRequest(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	var (
		mu                    sync.Mutex
		claimedBy             = map[string]string{}
		increments, conflicts int
	)
	var wg sync.WaitGroup
	for si, s := range stores {
		owner := fmt.Sprintf("server-%d", si)
		// A claimer per server takes small batches of due requests.
		wg.Go(func() {
			for {
				var got []lapse.Request
				err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
					rs, err := tx.DueRequests(ctx, now, 7)
					if err != nil {
						return err
					}
					got = got[:0]
					var evs []lapse.AuditEvent
					for _, r := range rs {
						r.Owner, r.NextAt = owner, now.Add(time.Hour)
						if err := tx.UpdateRequest(ctx, &r); err != nil {
							return err
						}
						got = append(got, r)
						evs = append(evs, lapse.NewAuditEvent("claimed", owner, r.State, r, nil, now))
					}
					return tx.AppendAudit(ctx, evs...)
				})
				if err != nil {
					t.Errorf("%s: claim: %v", owner, err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, r := range got {
					if prev, ok := claimedBy[r.ID]; ok {
						t.Errorf("%s claimed by %s and %s", r.ID, prev, owner)
					}
					claimedBy[r.ID] = owner
				}
				mu.Unlock()
			}
		})
		for w := range writers {
			wg.Go(func() {
				for i := range txs {
					err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
						c, err := tx.GetRequest(ctx, "counter")
						if err != nil {
							return err
						}
						c.Attempts++
						if err := tx.UpdateRequest(ctx, &c); err != nil {
							return err
						}
						ev := lapse.NewAuditEvent("counted", fmt.Sprintf("%s-w%d", owner, w), c.State, c, map[string]int{"i": i}, now)
						return tx.AppendAudit(ctx, ev, ev)
					})
					mu.Lock()
					switch {
					case err == nil:
						increments++
					case errors.Is(err, lapse.ErrConflict):
						conflicts++
					default:
						t.Errorf("%s writer %d: %v", owner, w, err)
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(claimedBy) != due {
		t.Errorf("claimed %d due requests, want %d", len(claimedBy), due)
	}
	perOwner := map[string]int{}
	for _, o := range claimedBy {
		perOwner[o]++
	}
	t.Logf("claims per server %v; %d increments, %d conflicts", perOwner, increments, conflicts)
	c, err := stores[1].GetRequest(ctx, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if c.Attempts != increments || increments+conflicts != servers*writers*txs {
		t.Errorf("counter at %d after %d increments and %d conflicts of %d", c.Attempts, increments, conflicts, servers*writers*txs)
	}
	// One chain, numbered without gaps, holding every committed event.
	var v lapse.ChainVerifier
	if err := stores[2].ScanAudit(ctx, v.Add); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	if want := int64(due + 2*increments); v.Count != want {
		t.Errorf("audit log has %d records, want %d", v.Count, want)
	}
	// The tree that the database extended is the tree of the records.
	tree, err := auditlog.NewTree(lapse.AuditTree{})
	if err != nil {
		t.Fatal(err)
	}
	if err := stores[0].ScanAudit(ctx, func(ev lapse.AuditEvent) error { return tree.Append(ev.Hash) }); err != nil {
		t.Fatal(err)
	}
	st, err := stores[1].AuditTree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	root, err := auditlog.RootOf(st)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != tree.Size() || st.Head != tree.Head() || !bytes.Equal(root, tree.Root()) {
		t.Errorf("stored tree: size %d, head %s; tree of the records: size %d, head %s", st.Size, st.Head, tree.Size(), tree.Head())
	}
}

// TestPostgresKeys has three servers create the same shared key at once:
// all get the first one stored, sealed in the database; a server with
// another secret key cannot open it.
func TestPostgresKeys(t *testing.T) {
	ctx := t.Context()
	stores := openServers(t, 3)
	box := newBox(t)
	keys := make([][]byte, len(stores))
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			ks, err := s.Keys(box)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i], err = ks.LoadOrCreate(ctx, "token.key", func() ([]byte, error) { return []byte(fmt.Sprintf("key of %d", i)), nil })
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := range keys {
		if string(keys[i]) != string(keys[0]) {
			t.Errorf("server %d got key %q, server 0 %q", i, keys[i], keys[0])
		}
	}
	ks, _ := stores[0].Keys(box)
	raw, err := ks.LoadOrCreate(ctx, "token.key", func() ([]byte, error) { return nil, errors.New("must not be called") })
	if err != nil || string(raw) != string(keys[0]) {
		t.Errorf("LoadOrCreate of a stored key = %q, %v", raw, err)
	}
	other, _ := stores[1].Keys(newBox(t))
	if _, err := other.LoadOrCreate(ctx, "token.key", func() ([]byte, error) { return nil, nil }); err == nil || strings.Contains(err.Error(), string(keys[0])) {
		t.Errorf("LoadOrCreate with another secret key: %v, want an error that names no key", err)
	}
	if _, err := openSQLite(t).Keys(box); err == nil {
		t.Error("an embedded store offered keys in the database")
	}
}

func newBox(t *testing.T) *seal.Box {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	b, err := seal.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPostgresReadOwnAppendsConcurrently mixes transactions that read the
// log between appends (and so hold the tree's row before they commit)
// with plain appends on one store: none waits for another forever, and
// the log stays one chain.
func TestPostgresReadOwnAppendsConcurrently(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s := openServers(t, 1)[0]
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := func(typ string) lapse.AuditEvent {
		return lapse.NewAuditEvent(typ, "alice", "", lapse.Request{ID: "r", User: "alice"}, nil, now)
	}
	const workers, txs = 6, 30
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range txs {
				err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
					if err := tx.AppendAudit(ctx, ev("first")); err != nil {
						return err
					}
					if w%2 == 0 {
						if _, err := tx.AuditTree(ctx); err != nil {
							return err
						}
						return tx.AppendAudit(ctx, ev("after-read"))
					}
					return nil
				})
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	var v lapse.ChainVerifier
	if err := s.ScanAudit(ctx, v.Add); err != nil {
		t.Fatal(err)
	}
	if want := int64(workers*txs + workers/2*txs); v.Count != want {
		t.Errorf("%d records, want %d", v.Count, want)
	}
}
