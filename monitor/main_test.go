package monitor_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
	"github.com/lapse-access/lapse/monitor"
)

// TestMain removes the shared PostgreSQL server after the tests and then
// checks that no goroutine is left behind.
func TestMain(m *testing.M) { os.Exit(pgtest.MainNoLeaks(m)) }

var start = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

// openStore opens a SQLite store in a temporary directory, closed when t
// ends.
func openStore(t testing.TB) lapse.Store { return lapsetest.OpenStore(t) }

// targets returns a Target that resolves resources by name in conns.
func targets(conns map[string]lapse.Connector) monitor.Target {
	return func(resource, role string) (lapse.Connector, any, error) {
		c, ok := conns[resource]
		if !ok {
			return nil, nil, lapse.NotFoundf("no resource %s", resource)
		}
		return c, nil, nil
	}
}

// newSampler returns a sampler over st with a manual clock at start.
func newSampler(st lapse.Store, conns map[string]lapse.Connector, clock lapse.Clock) *monitor.Sampler {
	return &monitor.Sampler{
		Store:  st,
		Target: targets(conns),
		Clock:  clock,
		Logger: slog.New(slog.DiscardHandler),
	}
}

// activeRequest stores an active request of user on resource with id, made
// at the given time, and returns it.
func activeRequest(t testing.TB, st lapse.Store, id, user, resource, ref string, at time.Time) lapse.Request {
	t.Helper()
	r, err := lapse.NewRequest(lapse.Request{
		ID: id, User: user, Resource: resource, Role: "read", Reason: "INC-7", Duration: time.Hour,
	}, 0, time.Hour, at)
	if err == nil {
		r, err = r.Claim("local", at, time.Minute)
	}
	if err == nil {
		r, err = r.Activate(ref, at)
	}
	if err != nil {
		t.Fatal(err)
	}
	return putRequest(t, st, r)
}

// putRequest stores a new request and returns it as stored.
func putRequest(t testing.TB, st lapse.Store, r lapse.Request) lapse.Request {
	t.Helper()
	err := st.Tx(context.Background(), func(ctx context.Context, tx lapse.Tx) error {
		return tx.CreateRequest(ctx, &r)
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// updateRequest stores a changed request.
func updateRequest(t testing.TB, st lapse.Store, r lapse.Request) {
	t.Helper()
	err := st.Tx(context.Background(), func(ctx context.Context, tx lapse.Tx) error {
		return tx.UpdateRequest(ctx, &r)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// activityEvents returns the activity events of the request with id (all
// requests if id is empty), and their activities.
func activityEvents(t testing.TB, st lapse.Store, id string) ([]lapse.AuditEvent, []lapse.Activity) {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), lapse.AuditFilter{Type: lapse.EvActivity, RequestID: id})
	if err != nil {
		t.Fatal(err)
	}
	acts := make([]lapse.Activity, len(evs))
	for i, ev := range evs {
		if err := json.Unmarshal(ev.Data, &acts[i]); err != nil {
			t.Fatalf("event %d data %s: %v", ev.Seq, ev.Data, err)
		}
	}
	return evs, acts
}

// verifyChain checks the whole audit log of st.
func verifyChain(t testing.TB, st lapse.Store) {
	t.Helper()
	var v lapse.ChainVerifier
	if err := st.ScanAudit(context.Background(), v.Add); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
}

// waitFor polls cond until it holds, failing t after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// newClock returns a manual clock at start.
func newClock() *lapsetest.Clock { return lapsetest.NewClock(start) }
