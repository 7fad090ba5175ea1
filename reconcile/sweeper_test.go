package reconcile_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/reconcile"
)

// provision creates an access for a grant in conn, as a connector call
// whose outcome was never recorded would have.
func provision(t testing.TB, conn lapse.Connector, g lapse.Grant) lapse.Provisioned {
	t.Helper()
	p, err := conn.Provision(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOrphanWithoutRequestIsRemoved(t *testing.T) {
	t.Parallel()
	conn := lapsetest.NewConnector()
	sw, _ := newSweeper(t, map[string]lapse.Connector{"orders-pg": conn})
	provision(t, conn, lapse.Grant{ID: "g-lost", User: "mallory", Resource: "orders-db", Role: "read"})

	removed, err := sw.Sweep(t.Context())
	if err != nil || removed != 1 {
		t.Fatalf("Sweep = %d, %v; want 1, nil", removed, err)
	}
	if conn.IsLive("g-lost") || conn.Revocations("g-lost") != 1 {
		t.Errorf("live = %v, revocations = %d; want the access revoked once", conn.IsLive("g-lost"), conn.Revocations("g-lost"))
	}
	evs, data := orphanEvents(t, sw.Store)
	if len(evs) != 1 {
		t.Fatalf("%d orphan events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Actor != "lapse" || ev.RequestID != "g-lost" || ev.User != "" || ev.Resource != "" || ev.From != "" || ev.To != "" || !ev.Time.Equal(start) {
		t.Errorf("event = %+v", ev)
	}
	want := orphanData{
		Connector: "orders-pg", Ref: "ref-g-lost", GrantID: "g-lost", Reason: "no request",
		Receipt: map[string]string{"grant": "g-lost", "live": "no"},
	}
	if diff := cmp.Diff(want, data[0]); diff != "" {
		t.Errorf("event data (-want +got):\n%s", diff)
	}
	verifyChain(t, sw.Store)

	// Nothing is left for the next sweep.
	if removed, err := sw.Sweep(t.Context()); err != nil || removed != 0 {
		t.Errorf("second Sweep = %d, %v; want 0, nil", removed, err)
	}
	if evs, _ := orphanEvents(t, sw.Store); len(evs) != 1 {
		t.Errorf("%d orphan events after the second sweep, want 1", len(evs))
	}
}

func TestAccessOfEndedRequestIsRemoved(t *testing.T) {
	t.Parallel()
	for _, state := range []lapse.State{
		lapse.StateEnded, lapse.StateDenied, lapse.StateCancelled, lapse.StateTimedOut, lapse.StateFailed, lapse.StatePending,
	} {
		t.Run(string(state), func(t *testing.T) {
			t.Parallel()
			conn := lapsetest.NewConnector()
			sw, clock := newSweeper(t, map[string]lapse.Connector{"orders-pg": conn})
			r := request(t, "g-"+string(state), state, start)
			putRequest(t, sw.Store, r)
			provision(t, conn, lapse.Grant{ID: r.ID, User: r.User, Resource: r.Resource, Role: r.Role})
			clock.Advance(2*time.Hour + reconcile.Settle)

			removed, err := sw.Sweep(t.Context())
			if err != nil || removed != 1 {
				t.Fatalf("Sweep = %d, %v; want 1, nil", removed, err)
			}
			if conn.IsLive(r.ID) {
				t.Error("the access is still live")
			}
			evs, data := orphanEvents(t, sw.Store)
			if len(evs) != 1 {
				t.Fatalf("%d orphan events, want 1", len(evs))
			}
			ev := evs[0]
			if ev.RequestID != r.ID || ev.User != r.User || ev.Resource != r.Resource || ev.Role != r.Role || ev.Actor != "lapse" {
				t.Errorf("event = %+v, want the request's id, user, resource and role", ev)
			}
			if data[0].RequestState != state || data[0].Reason != "request "+string(state) || data[0].Ref != "ref-"+r.ID {
				t.Errorf("event data = %+v", data[0])
			}
			verifyChain(t, sw.Store)
		})
	}
}

func TestScheduledAccessIsLeftAlone(t *testing.T) {
	t.Parallel()
	conn := lapsetest.NewConnector()
	sw, clock := newSweeper(t, map[string]lapse.Connector{"orders-pg": conn})
	states := []lapse.State{lapse.StateApproved, lapse.StateActive, lapse.StateRevoking}
	for _, state := range states {
		r := request(t, "g-"+string(state), state, start)
		putRequest(t, sw.Store, r)
		provision(t, conn, lapse.Grant{ID: r.ID, User: r.User})
	}
	clock.Advance(24 * time.Hour)

	removed, err := sw.Sweep(t.Context())
	if err != nil || removed != 0 {
		t.Fatalf("Sweep = %d, %v; want 0, nil", removed, err)
	}
	for _, state := range states {
		if !conn.IsLive("g-" + string(state)) {
			t.Errorf("the access of the %s request was removed", state)
		}
	}
	if n := conn.Calls("Revoke"); n != 0 {
		t.Errorf("Revoke called %d times", n)
	}
	if evs, _ := orphanEvents(t, sw.Store); len(evs) != 0 {
		t.Errorf("%d orphan events, want none", len(evs))
	}
}

func TestRecentlyEndedRequestWaitsForTheNextSweep(t *testing.T) {
	t.Parallel()
	conn := lapsetest.NewConnector()
	sw, clock := newSweeper(t, map[string]lapse.Connector{"orders-pg": conn})
	clock.Advance(time.Hour)
	// Ended just now: the scheduler may have removed the access while the
	// listing ran.
	r := request(t, "g-just-ended", lapse.StateEnded, clock.Now())
	putRequest(t, sw.Store, r)
	provision(t, conn, lapse.Grant{ID: r.ID, User: r.User})

	if removed, err := sw.Sweep(t.Context()); err != nil || removed != 0 {
		t.Fatalf("Sweep right after the end = %d, %v; want 0, nil", removed, err)
	}
	if !conn.IsLive(r.ID) {
		t.Fatal("the access was removed during the settle time")
	}
	clock.Advance(reconcile.Settle + time.Second)
	if removed, err := sw.Sweep(t.Context()); err != nil || removed != 1 {
		t.Fatalf("Sweep after the settle time = %d, %v; want 1, nil", removed, err)
	}
}

func TestListFailureIsIsolated(t *testing.T) {
	t.Parallel()
	down, up := lapsetest.NewConnector(), lapsetest.NewConnector()
	sw, _ := newSweeper(t, map[string]lapse.Connector{"down-pg": down, "up-pg": up})
	provision(t, down, lapse.Grant{ID: "g-down", User: "mallory"})
	provision(t, up, lapse.Grant{ID: "g-up", User: "mallory"})
	errDown := errors.New("connection refused")
	down.SetFailList(errDown)

	removed, err := sw.Sweep(t.Context())
	if removed != 1 || !errors.Is(err, errDown) || !strings.Contains(err.Error(), "down-pg") {
		t.Fatalf("Sweep = %d, %v; want 1 and the list error of down-pg", removed, err)
	}
	if up.IsLive("g-up") {
		t.Error("the orphan of up-pg is still live")
	}
	if !down.IsLive("g-down") {
		t.Error("the orphan of down-pg is gone although listing failed")
	}

	// Once the target is back, the next sweep removes its orphan.
	down.SetFailList(nil)
	if removed, err := sw.Sweep(t.Context()); err != nil || removed != 1 {
		t.Fatalf("Sweep after recovery = %d, %v; want 1, nil", removed, err)
	}
	if down.IsLive("g-down") {
		t.Error("the orphan of down-pg is still live")
	}
	evs, data := orphanEvents(t, sw.Store)
	if len(evs) != 2 || data[0].Connector != "up-pg" || data[1].Connector != "down-pg" {
		t.Errorf("orphan events = %+v, want up-pg then down-pg", data)
	}
	verifyChain(t, sw.Store)
}

func TestRevokeFailureIsRetried(t *testing.T) {
	t.Parallel()
	conn := lapsetest.NewConnector()
	sw, _ := newSweeper(t, map[string]lapse.Connector{"orders-pg": conn})
	provision(t, conn, lapse.Grant{ID: "g-a", User: "mallory"})
	provision(t, conn, lapse.Grant{ID: "g-b", User: "mallory"})
	errBusy := errors.New("target busy")
	conn.SetFailRevoke(errBusy)

	removed, err := sw.Sweep(t.Context())
	if removed != 0 || !errors.Is(err, errBusy) {
		t.Fatalf("Sweep = %d, %v; want 0 and the revoke error", removed, err)
	}
	if n := conn.Calls("Revoke"); n != 2 {
		t.Errorf("Revoke called %d times, want once per orphan although the first failed", n)
	}
	if evs, _ := orphanEvents(t, sw.Store); len(evs) != 0 {
		t.Errorf("%d orphan events after failed revocations, want none", len(evs))
	}

	conn.SetFailRevoke(nil)
	if removed, err := sw.Sweep(t.Context()); err != nil || removed != 2 {
		t.Fatalf("Sweep after recovery = %d, %v; want 2, nil", removed, err)
	}
	if evs, _ := orphanEvents(t, sw.Store); len(evs) != 2 {
		t.Errorf("%d orphan events, want 2", len(evs))
	}
	verifyChain(t, sw.Store)
}

func TestSweepWithoutConnectors(t *testing.T) {
	t.Parallel()
	sw, _ := newSweeper(t, nil)
	if removed, err := sw.Sweep(t.Context()); err != nil || removed != 0 {
		t.Errorf("Sweep = %d, %v; want 0, nil", removed, err)
	}
}

func TestRunSweepsAtStartAndEveryInterval(t *testing.T) {
	t.Parallel()
	conn := lapsetest.NewConnector()
	sw, clock := newSweeper(t, map[string]lapse.Connector{"orders-pg": conn})
	sw.Interval = 5 * time.Minute
	provision(t, conn, lapse.Grant{ID: "g-1", User: "mallory"})

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- sw.Run(ctx) }()

	waitFor(t, "the first sweep", func() bool { return !conn.IsLive("g-1") && clock.Timers() == 1 })
	provision(t, conn, lapse.Grant{ID: "g-2", User: "mallory"})
	clock.Advance(5*time.Minute - time.Second)
	time.Sleep(20 * time.Millisecond)
	if n := conn.Calls("List"); n != 1 {
		t.Fatalf("List called %d times before the interval passed, want 1", n)
	}
	clock.Advance(time.Second)
	waitFor(t, "the second sweep", func() bool { return !conn.IsLive("g-2") && clock.Timers() == 1 })

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if clock.Timers() != 0 {
		t.Error("Run left its timer running")
	}
	if evs, _ := orphanEvents(t, sw.Store); len(evs) != 2 {
		t.Errorf("%d orphan events, want 2", len(evs))
	}
}

func TestSweepCancelled(t *testing.T) {
	t.Parallel()
	conn := lapsetest.NewConnector()
	sw, _ := newSweeper(t, map[string]lapse.Connector{"orders-pg": conn})
	provision(t, conn, lapse.Grant{ID: "g-1", User: "mallory"})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := sw.Sweep(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Sweep with a cancelled context = %v, want context.Canceled", err)
	}
	// Run returns at once.
	if err := sw.Run(ctx); err != nil {
		t.Errorf("Run = %v", err)
	}
}
