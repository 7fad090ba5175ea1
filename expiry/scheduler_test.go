package expiry_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/broker"
	"github.com/lapse-access/lapse/expiry"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/seal"
	"github.com/lapse-access/lapse/sqlstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var start = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

var (
	alice = lapse.Principal{Name: "alice", Groups: []string{"eng"}}
	bob   = lapse.Principal{Name: "bob", Groups: []string{"leads"}}
)

// env is a scheduler and broker on a real SQLite store with a manual clock.
type env struct {
	t      *testing.T
	dir    string
	store  lapse.Store
	clock  *lapsetest.Clock
	conn   *lapsetest.Connector
	sched  *expiry.Scheduler
	broker *broker.Broker
	cancel context.CancelFunc
	done   chan struct{}
	ended  chan lapse.Request
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), clock: lapsetest.NewClock(start), conn: lapsetest.NewConnector()}
	e.open()
	t.Cleanup(func() {
		e.stop()
		e.store.Close()
	})
	return e
}

func (e *env) open() {
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(e.dir, "lapse.db"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = st
	box, err := seal.New(make([]byte, 32))
	if err != nil {
		e.t.Fatal(err)
	}
	catalog := &lapse.Catalog{Resources: []lapse.Resource{{Name: "db", Connector: "c", Roles: []lapse.Role{
		{Name: "read", MaxDuration: 4 * time.Hour, Requesters: []string{"eng"}},
		{Name: "admin", MaxDuration: time.Hour, Approvals: 1, Approvers: []string{"leads"}, Requesters: []string{"eng"}},
	}}}}
	target := func(resource, role string) (lapse.Connector, any, error) { return e.conn, nil, nil }
	e.ended = make(chan lapse.Request, 1000)
	e.sched = &expiry.Scheduler{Store: st, Target: target, Clock: e.clock, Sealer: box, Owner: "local",
		BackoffBase: time.Second, BackoffMax: 8 * time.Second, ProvisionAttempts: 3,
		OnEnded: func(r lapse.Request) { e.ended <- r }}
	e.broker = &broker.Broker{Store: st, Catalog: catalog, Decider: lapsetest.Policies{Catalog: catalog}, Executor: e.sched, Target: target,
		Sealer: box, Clock: e.clock, Owner: "local", PendingTTL: time.Hour}
}

func (e *env) run() {
	if err := e.sched.Recover(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go func() {
		defer close(e.done)
		if err := e.sched.Run(ctx); err != nil {
			e.t.Error(err)
		}
	}()
}

func (e *env) stop() {
	if e.cancel != nil {
		e.cancel()
		<-e.done
		e.cancel = nil
	}
}

// settle waits until the scheduler has caught up with the clock: no
// request is claimed (no connector call in flight), nothing is due, and the
// loop waits on a timer for the next due time, if there is one.
func (e *env) settle() {
	e.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	quiet := 0
	for time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		rs, err := e.store.ListRequests(ctx, lapse.RequestFilter{States: []lapse.State{
			lapse.StatePending, lapse.StateApproved, lapse.StateActive, lapse.StateRevoking}})
		if err != nil {
			e.t.Fatal(err)
		}
		busy := false
		for _, r := range rs {
			busy = busy || r.Owner != "" || r.Due(e.clock.Now())
		}
		_, ok, err := e.store.NextDue(ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		if busy || (ok && e.clock.Timers() == 0) {
			quiet = 0
			continue
		}
		// Quiet twice in a row: the loop has re-armed after its last commit.
		if quiet++; quiet >= 3 {
			return
		}
	}
	e.t.Fatal("scheduler did not settle")
}

// waitEnded waits for the next confirmed revocation.
func (e *env) waitEnded() lapse.Request {
	e.t.Helper()
	select {
	case r := <-e.ended:
		return r
	case <-time.After(10 * time.Second):
		e.t.Fatal("no revocation confirmed")
		return lapse.Request{}
	}
}

func (e *env) get(id string) lapse.Request {
	e.t.Helper()
	r, err := e.store.GetRequest(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) submit(role string, d time.Duration, at time.Time) lapse.Request {
	e.t.Helper()
	res, err := e.broker.Submit(context.Background(), alice, broker.SubmitInput{Resource: "db", Role: role, Duration: d, Reason: "test", StartAt: at})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Request
}

func TestExpiresAtTheInstant(t *testing.T) {
	e := newEnv(t)
	e.run()
	r := e.submit("read", time.Hour, time.Time{})
	if r.State != lapse.StateActive || !r.ExpiresAt.Equal(start.Add(time.Hour)) {
		t.Fatalf("submitted %s expiring %s", r.State, r.ExpiresAt)
	}
	e.settle()
	e.clock.Set(r.ExpiresAt.Add(-time.Nanosecond))
	e.settle()
	if got := e.get(r.ID); got.State != lapse.StateActive || !e.conn.IsLive(r.ID) {
		t.Fatalf("one nanosecond early: %s", got.State)
	}
	e.clock.Set(r.ExpiresAt)
	ended := e.waitEnded()
	got := e.get(r.ID)
	if ended.ID != r.ID || got.State != lapse.StateEnded || got.EndReason != lapse.EndExpired || !got.EndedAt.Equal(r.ExpiresAt) {
		t.Fatalf("after expiry: %s %s ended %s", got.State, got.EndReason, got.EndedAt)
	}
	if e.conn.IsLive(r.ID) {
		t.Fatal("access still live in the target")
	}
	assertChain(t, e.store)
}

func TestRevocationRetriesWithBackoffUntilConfirmed(t *testing.T) {
	e := newEnv(t)
	e.run()
	r := e.submit("read", time.Minute, time.Time{})
	e.conn.SetFailRevoke(errors.New("target down"))
	e.clock.Set(r.ExpiresAt)
	for attempt := 1; attempt <= 6; attempt++ {
		e.settle()
		got := e.get(r.ID)
		if got.State != lapse.StateRevoking || got.Attempts != attempt || got.LastError == "" {
			t.Fatalf("attempt %d: %s attempts=%d err=%q", attempt, got.State, got.Attempts, got.LastError)
		}
		// Capped exponential backoff with jitter over the upper half.
		want := min(time.Second<<(attempt-1), 8*time.Second)
		if d := got.NextAt.Sub(e.clock.Now()); d < want/2 || d > want {
			t.Fatalf("attempt %d: retry in %s, want between %s and %s", attempt, d, want/2, want)
		}
		if attempt < 6 {
			e.clock.Set(got.NextAt)
		}
	}
	e.conn.SetFailRevoke(nil)
	e.clock.Set(e.get(r.ID).NextAt)
	e.waitEnded()
	if got := e.get(r.ID); got.State != lapse.StateEnded || got.LastError != "" {
		t.Fatalf("after recovery: %s %q", got.State, got.LastError)
	}
	evs, err := e.store.ListAudit(context.Background(), lapse.AuditFilter{RequestID: r.ID, Type: lapse.EvRevokeFailed})
	if err != nil || len(evs) < 6 {
		t.Fatalf("revoke_failed records: %d %v", len(evs), err)
	}
}

func TestRestartRevokesOverdueGrants(t *testing.T) {
	e := newEnv(t)
	e.run()
	var ids []string
	for i := range 20 {
		ids = append(ids, e.submit("read", time.Duration(i+1)*time.Second, time.Time{}).ID)
	}
	e.settle()
	e.stop()
	e.clock.Advance(time.Hour)
	e.store.Close()
	e.open()
	e.run()
	for range ids {
		e.waitEnded()
	}
	for _, id := range ids {
		if got := e.get(id); got.State != lapse.StateEnded || got.EndReason != lapse.EndExpired || e.conn.IsLive(id) {
			t.Fatalf("%s: %s %s", id, got.State, got.EndReason)
		}
	}
	assertChain(t, e.store)
}

func TestRestartReleasesClaimsOfACrash(t *testing.T) {
	e := newEnv(t)
	r := e.submit("read", time.Hour, time.Time{}) // active; no scheduler yet
	// Simulate a crash in the middle of a revocation: revoking, claimed for
	// two minutes, connector never called.
	err := e.store.Tx(context.Background(), func(ctx context.Context, tx lapse.Tx) error {
		cur, err := tx.GetRequest(ctx, r.ID)
		if err != nil {
			return err
		}
		next, err := cur.Release("alice", e.clock.Now())
		if err != nil {
			return err
		}
		if next, err = next.Claim("local", e.clock.Now(), 2*time.Minute); err != nil {
			return err
		}
		return tx.UpdateRequest(ctx, &next)
	})
	if err != nil {
		t.Fatal(err)
	}
	e.run()
	e.waitEnded()
	if e.conn.IsLive(r.ID) {
		t.Fatal("still live")
	}
}

func TestPendingTimesOut(t *testing.T) {
	e := newEnv(t)
	e.run()
	r := e.submit("admin", time.Hour, time.Time{})
	if r.State != lapse.StatePending {
		t.Fatalf("state %s", r.State)
	}
	e.settle()
	e.clock.Set(r.PendingUntil.Add(-time.Millisecond))
	e.settle()
	if got := e.get(r.ID); got.State != lapse.StatePending {
		t.Fatalf("early: %s", got.State)
	}
	e.clock.Set(r.PendingUntil)
	e.settle()
	if got := e.get(r.ID); got.State != lapse.StateTimedOut {
		t.Fatalf("at deadline: %s", got.State)
	}
	if _, err := e.broker.Approve(context.Background(), bob, r.ID, ""); !errors.Is(err, lapse.ErrConflict) {
		t.Fatalf("approving a timed-out request: %v", err)
	}
}

func TestScheduledWindowStartsLater(t *testing.T) {
	e := newEnv(t)
	e.run()
	at := start.Add(3 * time.Hour)
	r := e.submit("read", time.Hour, at)
	if r.State != lapse.StateApproved || e.conn.IsLive(r.ID) {
		t.Fatalf("before the window: %s live=%v", r.State, e.conn.IsLive(r.ID))
	}
	e.settle()
	e.clock.Set(at)
	e.settle()
	got := e.get(r.ID)
	if got.State != lapse.StateActive || !got.ExpiresAt.Equal(at.Add(time.Hour)) || !e.conn.IsLive(r.ID) || !got.CredentialsWaiting {
		t.Fatalf("at the window: %s expires %s creds=%v", got.State, got.ExpiresAt, got.CredentialsWaiting)
	}
	c, err := e.broker.TakeCredentials(context.Background(), alice, r.ID)
	if err != nil || c.Value != "secret-"+r.ID {
		t.Fatalf("credentials: %+v %v", c, err)
	}
	if _, err := e.broker.TakeCredentials(context.Background(), alice, r.ID); !errors.Is(err, lapse.ErrGone) {
		t.Fatalf("credentials twice: %v", err)
	}
	e.clock.Set(at.Add(time.Hour))
	e.waitEnded()
}

func TestProvisionRetriesThenFailsLeavingNothing(t *testing.T) {
	e := newEnv(t)
	e.run()
	e.conn.SetFailProvision(errors.New("target down"))
	r := e.submit("read", time.Hour, time.Time{})
	if r.State != lapse.StateApproved || r.LastError == "" {
		t.Fatalf("after a failed inline provisioning: %s %q", r.State, r.LastError)
	}
	for range 10 {
		e.settle()
		got := e.get(r.ID)
		if got.State == lapse.StateFailed {
			break
		}
		e.clock.Set(got.NextAt)
	}
	got := e.get(r.ID)
	if got.State != lapse.StateFailed {
		t.Fatalf("state %s after retries", got.State)
	}
	if n := e.conn.Calls("Provision"); n != 3 {
		t.Fatalf("provision tried %d times, want 3", n)
	}
	if e.conn.Revocations(r.ID) == 0 {
		t.Fatal("nothing was cleaned up before failing")
	}
}

func TestConcurrentReleaseAndExpiry(t *testing.T) {
	e := newEnv(t)
	e.run()
	var ids []string
	for range 50 {
		ids = append(ids, e.submit("read", time.Minute, time.Time{}).ID)
	}
	var wg sync.WaitGroup
	for i, id := range ids {
		if i%2 == 0 {
			wg.Go(func() { _, _ = e.broker.Release(context.Background(), alice, id) })
		}
	}
	e.clock.Advance(time.Minute)
	wg.Wait()
	for range 20 {
		e.settle()
	}
	for _, id := range ids {
		got := e.get(id)
		if got.State != lapse.StateEnded || e.conn.IsLive(id) {
			t.Fatalf("%s: %s live=%v", id, got.State, e.conn.IsLive(id))
		}
	}
	assertChain(t, e.store)
}

func assertChain(t *testing.T, s lapse.Store) {
	t.Helper()
	var v lapse.ChainVerifier
	if err := s.ScanAudit(context.Background(), v.Add); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
}

// TestClaimsNoMoreThanWorkersCanStart: with few workers and many grants
// expiring at once, each grant is revoked once; none waits in the queue
// past its lease to be claimed a second time.
func TestClaimsNoMoreThanWorkersCanStart(t *testing.T) {
	e := newEnv(t)
	e.sched.Concurrency = 2
	e.run()
	var ids []string
	for range 30 {
		ids = append(ids, e.submit("read", time.Minute, time.Time{}).ID)
	}
	e.clock.Advance(time.Minute)
	for range ids {
		e.waitEnded()
	}
	for _, id := range ids {
		if n := e.conn.Revocations(id); n != 1 {
			t.Errorf("%s revoked %d times", id, n)
		}
	}
	assertChain(t, e.store)
}

// TestProvisionFailsAtOnceWhenTheTargetIsGone: a resource whose connector
// cannot be resolved is not retried; the request fails with the reason.
func TestProvisionFailsAtOnceWhenTheTargetIsGone(t *testing.T) {
	e := newEnv(t)
	e.sched.Target = func(string, string) (lapse.Connector, any, error) {
		return nil, nil, lapse.Unrecoverable(errors.New("resource db has no connector"))
	}
	e.run()
	r := e.submit("read", time.Hour, time.Time{})
	if r.State != lapse.StateFailed || !strings.Contains(r.LastError, "has no connector") {
		t.Fatalf("state %s, last error %q; want failed at once", r.State, r.LastError)
	}
}

// TestChangedWhileProvisioningIsUndone ends a request while its inline
// provisioning runs: the outcome is not recorded over the change, the
// access provisioned is revoked, and the submit answers with the request
// as it now is.
func TestChangedWhileProvisioningIsUndone(t *testing.T) {
	e := newEnv(t)
	e.run()
	e.conn.OnProvision = func(g lapse.Grant) {
		err := e.store.Tx(context.Background(), func(ctx context.Context, tx lapse.Tx) error {
			r, err := tx.GetRequest(ctx, g.ID)
			if err != nil {
				return err
			}
			r.State, r.EndedAt, r.EndReason, r.NextAt, r.Owner = lapse.StateEnded, e.clock.Now(), "cancelled", time.Time{}, ""
			return tx.UpdateRequest(ctx, &r)
		})
		if err != nil {
			t.Errorf("end the request while it is provisioned: %v", err)
		}
	}
	r := e.submit("read", time.Hour, time.Time{})
	if r.State != lapse.StateEnded || r.EndReason != "cancelled" {
		t.Errorf("submit answered %s (%q), want the request ended while provisioning", r.State, r.EndReason)
	}
	if got := e.get(r.ID); got.State != lapse.StateEnded || got.EndReason != "cancelled" {
		t.Errorf("stored %s (%q), want ended as cancelled", got.State, got.EndReason)
	}
	if e.conn.IsLive(r.ID) || e.conn.Revocations(r.ID) != 1 {
		t.Errorf("provisioned access live %v after %d revocations, want revoked once", e.conn.IsLive(r.ID), e.conn.Revocations(r.ID))
	}
}
