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

// TestActiveIndex checks the in-memory access check against what was
// committed: a rolled-back activation is not seen, a revocation is seen at
// once, and a reopened store rebuilds it from the file.
func TestActiveIndex(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lapse.db")
	s, err := sqlstore.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	active := func(id string) lapse.Request {
		r, err := lapse.NewRequest(lapse.Request{ID: id, User: "alice", Resource: "db", Role: "read", Duration: time.Hour, Reason: "x"}, 0, time.Hour, now)
		if err != nil {
			t.Fatal(err)
		}
		if r, err = r.Activate("ref", now); err != nil {
			t.Fatal(err)
		}
		return r
	}
	check := func(s *sqlstore.Store, want string) {
		t.Helper()
		g, err := s.ActiveGrant(ctx, "alice", "db", "read", now.Add(time.Minute))
		if want == "" {
			if !errors.Is(err, lapse.ErrNotFound) {
				t.Fatalf("ActiveGrant = %v %v, want not found", g.ID, err)
			}
			return
		}
		if err != nil || g.ID != want || !g.ExpiresAt.Equal(now.Add(time.Hour)) {
			t.Fatalf("ActiveGrant = %+v %v, want %s", g, err, want)
		}
	}
	boom := errors.New("boom")
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		r := active("g1")
		if err := tx.CreateRequest(ctx, &r); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	check(s, "")
	r := active("g1")
	if err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.CreateRequest(ctx, &r) }); err != nil {
		t.Fatal(err)
	}
	check(s, "g1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = sqlstore.OpenSQLite(ctx, path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s, "g1")
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		next, err := r.Release("alice", now)
		if err != nil {
			return err
		}
		return tx.UpdateRequest(ctx, &next)
	})
	if err != nil {
		t.Fatal(err)
	}
	check(s, "")
}
