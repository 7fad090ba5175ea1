package reconcile_test

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
	"github.com/lapse-access/lapse/reconcile"
)

// TestMain removes the shared PostgreSQL server after the tests and then
// checks that no goroutine is left behind.
func TestMain(m *testing.M) { os.Exit(pgtest.MainNoLeaks(m)) }

var start = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

// openStore opens a SQLite store in a temporary directory, closed when t
// ends.
func openStore(t testing.TB) lapse.Store { return lapsetest.OpenStore(t) }

// newSweeper returns a sweeper over conns, with a manual clock at start
// and a fresh store.
func newSweeper(t testing.TB, conns map[string]lapse.Connector) (*reconcile.Sweeper, *lapsetest.Clock) {
	t.Helper()
	clock := lapsetest.NewClock(start)
	return &reconcile.Sweeper{
		Store:      openStore(t),
		Connectors: conns,
		Clock:      clock,
		Logger:     slog.New(slog.DiscardHandler),
	}, clock
}

// request returns a request with id in state, built through the state
// machine at times from at on.
func request(t testing.TB, id string, state lapse.State, at time.Time) lapse.Request {
	t.Helper()
	approvals := 0
	switch state {
	case lapse.StatePending, lapse.StateDenied, lapse.StateTimedOut:
		approvals = 1
	}
	r, err := lapse.NewRequest(lapse.Request{
		ID: id, User: "alice", Resource: "orders-db", Role: "read", Reason: "INC-1", Duration: time.Hour,
	}, approvals, time.Hour, at)
	if err != nil {
		t.Fatal(err)
	}
	step := func(next lapse.Request, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("build %s request: %v", state, err)
		}
		r = next
	}
	switch state {
	case lapse.StateDenied:
		step(r.Deny("bob", "not now", at))
	case lapse.StateTimedOut:
		step(r.TimeOut(r.PendingUntil))
	case lapse.StateCancelled:
		step(r.Cancel("alice", "", at))
	case lapse.StateFailed:
		step(r.Claim("local", at, time.Minute))
		step(r.ProvisionFailed("target down", time.Time{}, at))
	case lapse.StateActive, lapse.StateRevoking, lapse.StateEnded:
		step(r.Claim("local", at, time.Minute))
		step(r.Activate("ref-"+id, at))
		if state == lapse.StateActive {
			break
		}
		step(r.Release("alice", at))
		if state == lapse.StateRevoking {
			break
		}
		step(r.Claim("local", at, time.Minute))
		step(r.ConfirmRevoked(at))
	}
	if r.State != state {
		t.Fatalf("built a %s request, want %s", r.State, state)
	}
	return r
}

// putRequest stores r.
func putRequest(t testing.TB, st lapse.Store, r lapse.Request) {
	t.Helper()
	err := st.Tx(context.Background(), func(ctx context.Context, tx lapse.Tx) error {
		return tx.CreateRequest(ctx, &r)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// orphanEvents returns the orphan events in st, with their data decoded.
func orphanEvents(t testing.TB, st lapse.Store) ([]lapse.AuditEvent, []orphanData) {
	t.Helper()
	evs, err := st.ListAudit(context.Background(), lapse.AuditFilter{Type: lapse.EvOrphanRemoved})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]orphanData, len(evs))
	for i, ev := range evs {
		if err := json.Unmarshal(ev.Data, &data[i]); err != nil {
			t.Fatalf("event %d data %s: %v", ev.Seq, ev.Data, err)
		}
	}
	return evs, data
}

// orphanData is the data of an orphan event.
type orphanData struct {
	Connector    string            `json:"connector"`
	Ref          string            `json:"ref"`
	GrantID      string            `json:"grant_id"`
	Reason       string            `json:"reason"`
	RequestState lapse.State       `json:"request_state"`
	Receipt      map[string]string `json:"receipt"`
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
