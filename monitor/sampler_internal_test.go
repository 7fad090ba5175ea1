package monitor

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/sqlstore"
)

var t0 = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

func TestPruneForgetsOldKeys(t *testing.T) {
	k := keys{"old": t0, "recent": t0.Add(50 * time.Minute), "now": t0.Add(forgetAfter)}
	k.prune(t0.Add(forgetAfter + time.Second))
	if _, ok := k["old"]; ok || len(k) != 2 {
		t.Errorf("keys after prune = %v, want old forgotten", k)
	}
}

func TestPruneCapsKeys(t *testing.T) {
	k := keys{}
	for i := range maxKeys + 10 {
		k[fmt.Sprint(i)] = t0.Add(time.Duration(i) * time.Millisecond)
	}
	k.prune(t0)
	if len(k) != maxKeys {
		t.Fatalf("%d keys after prune, want %d", len(k), maxKeys)
	}
	for i := range 10 {
		if _, ok := k[fmt.Sprint(i)]; ok {
			t.Errorf("key %d, one of the least recently shown, was kept", i)
		}
	}
}

func TestMemoryFollowsActiveGrants(t *testing.T) {
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "lapse.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clock, fake := lapsetest.NewClock(t0), lapsetest.NewSampler()
	s := &Sampler{
		Store:  st,
		Target: func(string, string) (lapse.Connector, any, error) { return fake, nil, nil },
		Clock:  clock, Logger: slog.New(slog.DiscardHandler),
	}
	r, err := lapse.NewRequest(lapse.Request{ID: "g-1", User: "alice", Resource: "db", Role: "read", Reason: "x", Duration: time.Hour}, 0, time.Hour, t0)
	if err == nil {
		r, err = r.Claim("local", t0, time.Minute)
	}
	if err == nil {
		r, err = r.Activate("ref", t0)
	}
	if err != nil {
		t.Fatal(err)
	}
	tx := func(fn func(ctx context.Context, tx lapse.Tx) error) {
		t.Helper()
		if err := st.Tx(context.Background(), fn); err != nil {
			t.Fatal(err)
		}
	}
	tx(func(ctx context.Context, tx lapse.Tx) error { return tx.CreateRequest(ctx, &r) })
	fake.SetActivity(r.ID, lapse.Activity{Key: "pid 1"}, lapse.Activity{Key: "pid 2"})
	if _, err := s.SampleOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := len(s.seen[r.ID]); got != 2 {
		t.Fatalf("%d keys remembered, want 2", got)
	}

	// The target no longer shows pid 1: forgotten after an hour.
	fake.SetActivity(r.ID, lapse.Activity{Key: "pid 2"})
	clock.Advance(forgetAfter / 2)
	if _, err := s.SampleOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(forgetAfter/2 + time.Second)
	if _, err := s.SampleOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.seen[r.ID]["pid 1"]; ok || len(s.seen[r.ID]) != 1 {
		t.Errorf("remembered %v, want pid 2 only", s.seen[r.ID])
	}

	// The grant ends: its memory goes.
	r, err = r.Release("alice", clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	tx(func(ctx context.Context, tx lapse.Tx) error { return tx.UpdateRequest(ctx, &r) })
	if _, err := s.SampleOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(s.seen) != 0 {
		t.Errorf("memory after the grant ended = %v, want empty", s.seen)
	}
}
