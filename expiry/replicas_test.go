package expiry_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/broker"
	"github.com/lapse-access/lapse/expiry"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
	"github.com/lapse-access/lapse/seal"
	"github.com/lapse-access/lapse/sqlstore"
)

// errDead is what a killed replica's store and connector calls fail with.
var errDead = errors.New("replica killed")

// mortalStore is a replica's store that stops writing the moment the
// replica is killed, as a killed process would: nothing it does after
// reaches the database.
type mortalStore struct {
	*sqlstore.Store
	dead *atomic.Bool
}

func (s mortalStore) Tx(ctx context.Context, fn func(ctx context.Context, tx lapse.Tx) error) error {
	if s.dead.Load() {
		return errDead
	}
	return s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if s.dead.Load() {
			return errDead
		}
		return fn(ctx, tx)
	})
}

// mortalConnector is a replica's handle on the shared target, which a
// killed replica no longer reaches.
type mortalConnector struct {
	lapse.Connector
	dead *atomic.Bool
}

func (c mortalConnector) Provision(ctx context.Context, g lapse.Grant) (lapse.Provisioned, error) {
	if c.dead.Load() {
		return lapse.Provisioned{}, errDead
	}
	return c.Connector.Provision(ctx, g)
}

func (c mortalConnector) Revoke(ctx context.Context, g lapse.Grant) error {
	if c.dead.Load() {
		return errDead
	}
	return c.Connector.Revoke(ctx, g)
}

func (c mortalConnector) VerifyGone(ctx context.Context, g lapse.Grant) (map[string]string, error) {
	if c.dead.Load() {
		return nil, errDead
	}
	return c.Connector.VerifyGone(ctx, g)
}

// replica is one server: store, scheduler, broker and listener on the
// shared database, with the claim owner of its own.
type replica struct {
	owner  string
	store  *sqlstore.Store
	sched  *expiry.Scheduler
	broker *broker.Broker
	dead   atomic.Bool
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// cluster is several replicas on one database and one shared target.
type cluster struct {
	replicas []*replica
	conn     *lapsetest.Connector
	catalog  *lapse.Catalog
	decider  lapse.Decider
	box      lapse.Sealer
	quiet    *slog.Logger
	ended    sync.Map // request id → *atomic.Int32: how often OnEnded saw it
}

const (
	replicaLease = 3 * time.Second
	replicaCall  = time.Second
)

func newCluster(t testing.TB, dsn string, n int, lease time.Duration) *cluster {
	t.Helper()
	c := &cluster{conn: lapsetest.NewConnector()}
	c.catalog = &lapse.Catalog{Resources: []lapse.Resource{{Name: "app", Connector: "target", Roles: []lapse.Role{
		{Name: "read", MaxDuration: time.Hour, Requesters: []string{"eng"}},
		{Name: "admin", MaxDuration: time.Hour, Approvals: 1, Approvers: []string{"leads"}, Requesters: []string{"eng"}},
	}}}}
	decider := lapsetest.CompiledPolicies(t, c.catalog)
	box, err := seal.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	c.decider, c.box, c.quiet = decider, box, quiet
	for i := range n {
		st, err := sqlstore.OpenPostgres(t.Context(), dsn, sqlstore.PostgresOptions{MaxConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		r := &replica{owner: fmt.Sprintf("replica-%d", i), store: st}
		store := mortalStore{Store: st, dead: &r.dead}
		conn := mortalConnector{Connector: c.conn, dead: &r.dead}
		target := func(string, string) (lapse.Connector, any, error) { return conn, nil, nil }
		r.sched = &expiry.Scheduler{Store: store, Target: target, Sealer: box, Owner: r.owner, Logger: quiet,
			Lease: lease, CallTimeout: replicaCall, Concurrency: 64, Announced: true, BackoffBase: 200 * time.Millisecond, BackoffMax: time.Second,
			OnEnded: func(req lapse.Request) {
				v, _ := c.ended.LoadOrStore(req.ID, new(atomic.Int32))
				v.(*atomic.Int32).Add(1)
			}}
		r.broker = &broker.Broker{Store: store, Catalog: c.catalog, Decider: decider, Executor: r.sched,
			Target: func(string, string) (lapse.Connector, any, error) { return conn, nil, nil }, Sealer: box,
			Owner: r.owner, Lease: lease, Logger: quiet}
		c.replicas = append(c.replicas, r)
	}
	return c
}

// start runs every replica's scheduler and listener.
func (c *cluster) start(t testing.TB) {
	t.Helper()
	for _, r := range c.replicas {
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		if err := r.sched.Recover(ctx); err != nil {
			t.Fatal(err)
		}
		r.done.Go(func() { _ = r.sched.Run(ctx) })
		if l, err := r.store.Listener(); err == nil {
			r.done.Go(func() { _ = l.Run(ctx, r.sched.NotifyAt, nil) })
		}
	}
	t.Cleanup(c.stop)
}

// stop stops every replica's scheduler and listener.
func (c *cluster) stop() {
	for _, r := range c.replicas {
		r.cancel()
		r.done.Wait()
	}
}

// kill stops r abruptly: from now on nothing it does reaches the database
// or the target, and its claims stay behind until their lease ends.
func (r *replica) kill() {
	r.dead.Store(true)
	r.cancel()
	r.done.Wait()
}

// live returns a replica that has not been killed, at random.
func (c *cluster) live() *replica {
	for {
		r := c.replicas[rand.IntN(len(c.replicas))]
		if !r.dead.Load() {
			return r
		}
	}
}

// settled reports whether no request is provisioning, active or revoking.
func (c *cluster) settled(ctx context.Context) (int, error) {
	n := 0
	for _, s := range []lapse.State{lapse.StateApproved, lapse.StateActive, lapse.StateRevoking} {
		k, err := c.replicas[0].store.CountRequests(ctx, s)
		if err != nil {
			return 0, err
		}
		n += k
	}
	return n, nil
}

func (c *cluster) waitSettled(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n, err := c.settled(context.Background())
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests still approved, active or revoking after %s (err %v)", n, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// check verifies the end state: every provisioned grant ended exactly once
// and is gone from the target, the audit log verifies without gaps. It
// returns how many grants ended and how many were revoked more than once
// at the target (idempotent duplicates after a takeover).
func (c *cluster) check(t testing.TB) (ended, duplicates int) {
	t.Helper()
	ctx := context.Background()
	st := c.replicas[0].store
	endedEvents := map[string]int{}
	var v lapse.ChainVerifier
	err := st.ScanAudit(ctx, func(ev lapse.AuditEvent) error {
		if ev.Type == lapse.EvEnded {
			endedEvents[ev.RequestID]++
		}
		return v.Add(ev)
	})
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	all, err := st.ListRequests(ctx, lapse.RequestFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		provisioned := r.Ref != ""
		switch {
		case c.conn.IsLive(r.ID):
			t.Errorf("grant %s (%s) is still live at the target", r.ID, r.State)
		case r.State == lapse.StateEnded:
			ended++
			if endedEvents[r.ID] != 1 {
				t.Errorf("grant %s ended %d times in the audit log", r.ID, endedEvents[r.ID])
			}
			if n := c.conn.Revocations(r.ID); n == 0 {
				t.Errorf("grant %s ended without a revocation at the target", r.ID)
			} else if n > 1 {
				duplicates++
			}
		case provisioned:
			t.Errorf("grant %s was provisioned and is %s", r.ID, r.State)
		}
	}
	if v.Count == 0 {
		t.Error("empty audit log")
	}
	return ended, duplicates
}

// TestReplicasExpireExactlyOnce runs three replicas on one PostgreSQL:
// 5,000 grants issued through random replicas, each expiring 1–11 s after
// it was issued, while random approvals, releases and revocations go to
// random replicas; halfway through one replica is killed with its claims
// left behind. Every grant ends exactly once.
func TestReplicasExpireExactlyOnce(t *testing.T) {
	grants, pending := 5000, 300
	if testing.Short() {
		grants, pending = 500, 50
	}
	pg := pgtest.Start(t)
	c := newCluster(t, pg.AdminDSNFor(pg.CreateDatabase(t)), 3, replicaLease)
	c.start(t)
	ctx := t.Context()

	// Requests that wait for an approval.
	waiting := make([]string, pending)
	for i := range waiting {
		res, err := c.live().broker.Submit(ctx, lapse.Principal{Name: "dora", Groups: []string{"eng"}},
			broker.SubmitInput{Resource: "app", Role: "admin", Duration: time.Duration(2+i%5) * time.Second, Reason: "needs approval"})
		if err != nil {
			t.Fatal(err)
		}
		waiting[i] = res.Request.ID
	}

	// Chaos from the start: approvals (two approvers racing, on different
	// replicas), releases by the requester, revocations by an admin, all
	// to random replicas, on grants issued so far.
	ids := make([]atomic.Pointer[lapse.Request], grants)
	var issued atomic.Int64
	var okCalls, conflicts atomic.Int64
	call := func(what string, fn func(b *broker.Broker) error) {
		err := fn(c.live().broker)
		switch {
		case err == nil:
			okCalls.Add(1)
		case errors.Is(err, lapse.ErrConflict):
			conflicts.Add(1)
		case errors.Is(err, errDead), errors.Is(err, context.Canceled):
			// Sent to the replica as it was killed.
		default:
			t.Errorf("%s: %v", what, err)
		}
	}
	someGrant := func() (user, id string, ok bool) {
		n := int(issued.Load())
		if n == 0 {
			return "", "", false
		}
		p := ids[rand.IntN(min(n, grants))].Load()
		if p == nil {
			return "", "", false
		}
		return p.User, p.ID, true
	}
	admin := lapse.Principal{Name: "carol", Groups: []string{"security"}, Admin: true}
	chaosCtx, stopChaos := context.WithCancel(ctx)
	var chaos sync.WaitGroup
	for w := range 6 {
		chaos.Go(func() {
			for chaosCtx.Err() == nil {
				switch rand.IntN(3) {
				case 0:
					id := waiting[rand.IntN(len(waiting))]
					approver := lapse.Principal{Name: fmt.Sprintf("lead%d", w%2), Groups: []string{"leads"}}
					call("approve", func(b *broker.Broker) error {
						_, err := b.Approve(ctx, approver, id, "ok")
						return err
					})
				case 1:
					if user, id, ok := someGrant(); ok {
						call("release", func(b *broker.Broker) error {
							_, err := b.Release(ctx, lapse.Principal{Name: user, Groups: []string{"eng"}}, id)
							return err
						})
					}
				case 2:
					if _, id, ok := someGrant(); ok {
						call("revoke", func(b *broker.Broker) error {
							_, err := b.Revoke(ctx, admin, id, "chaos")
							return err
						})
					}
				}
				time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond)
			}
		})
	}

	// Grants through random replicas, 16 at a time; replica 0 is killed
	// once half of them are issued, while earlier ones are expiring.
	var next atomic.Int64
	var wg sync.WaitGroup
	var killOnce sync.Once
	for w := range 16 {
		wg.Go(func() {
			p := lapse.Principal{Name: fmt.Sprintf("user%d", w), Groups: []string{"eng"}}
			for {
				i := int(next.Add(1)) - 1
				if i >= grants {
					return
				}
				if i == grants/2 {
					killOnce.Do(func() { go c.replicas[0].kill() })
				}
				d := time.Second + time.Duration(i)*10*time.Second/time.Duration(grants)
				var res broker.Result
				var err error
				for {
					r := c.live()
					res, err = r.broker.Submit(ctx, p, broker.SubmitInput{Resource: "app", Role: "read", Duration: d, Reason: "load"})
					if errors.Is(err, errDead) && res.Request.ID == "" {
						continue // not stored: ask another replica
					}
					if r.dead.Load() && res.Request.ID != "" {
						// Stored and claimed as the replica died: another
						// takes the claim over when its lease ends.
						err = nil
						res.Request.State = lapse.StateActive
					}
					break
				}
				// Approved means the inline step could not record its
				// result (its claim outlived on a loaded machine, and
				// another replica provisions it): still one grant to end.
				if err != nil || (res.Request.State != lapse.StateActive && res.Request.State != lapse.StateApproved) {
					t.Errorf("submit %d: %v (%s)", i, err, res.Request.State)
					return
				}
				r := res.Request
				ids[i].Store(&r)
				issued.Add(1)
			}
		})
	}
	wg.Wait()
	time.Sleep(2 * time.Second) // chaos goes on while the last grants expire
	stopChaos()
	chaos.Wait()
	if t.Failed() {
		return
	}

	// The dead replica's claims are taken over once their lease ends.
	c.waitSettled(t, replicaLease+60*time.Second)
	ended, dups := c.check(t)
	var twice int
	c.ended.Range(func(_, v any) bool {
		if v.(*atomic.Int32).Load() > 1 {
			twice++
		}
		return true
	})
	if twice > 0 {
		t.Errorf("%d grants were confirmed ended more than once", twice)
	}
	t.Logf("%d grants ended; %d calls succeeded, %d refused as conflicts; %d grants revoked twice at the target (the killed replica's claims, taken over)",
		ended, okCalls.Load(), conflicts.Load(), dups)
	if ended < grants {
		t.Errorf("%d grants ended, want at least %d", ended, grants)
	}
	if conflicts.Load() == 0 {
		t.Error("no call lost a race: the test did not exercise concurrent changes")
	}
}

// storeActive stores n active grants of app/read directly, expiring at
// expires(i), from 4 goroutines.
func storeActive(t testing.TB, st lapse.Store, n int, expires func(i int) time.Time) {
	t.Helper()
	const chunk = 1000
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				from := int(next.Add(chunk)) - chunk
				if from >= n {
					return
				}
				err := st.Tx(context.Background(), func(ctx context.Context, tx lapse.Tx) error {
					for i := from; i < min(from+chunk, n); i++ {
						exp := expires(i)
						r, err := lapse.NewRequest(lapse.Request{ID: fmt.Sprintf("g%06d", i), User: fmt.Sprintf("user%d", i%1000),
							Resource: "app", Role: "read", Reason: "load", Duration: time.Hour}, 0, time.Hour, exp.Add(-time.Hour))
						if err != nil {
							return err
						}
						if r, err = r.Activate("ref-"+r.ID, exp.Add(-time.Hour)); err != nil {
							return err
						}
						if err := tx.CreateRequest(ctx, &r); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// TestReplicasDatabaseRestart stops the database in the middle of an
// expiry wave on three replicas and starts it again after the wave: no
// grant is lost and each is revoked once at the target. How soon they end
// after the database is back is measured by the benchmark of the same
// name; here it must only come before the claims' leases would end.
func TestReplicasDatabaseRestart(t *testing.T) {
	grants := 1000
	if testing.Short() {
		grants = 200
	}
	after := restartDuringWave(t, grants)
	t.Logf("last grant ended %s after the database was back", after)
	if after > 30*time.Second {
		t.Errorf("last grant ended %s after the database was back: results waited for their leases", after)
	}
}

// BenchmarkReplicasDatabaseRestart reports how long after the database is
// back the last of 1,000 grants that expired while it was down has ended,
// on three replicas. Run it with -benchtime 1x.
func BenchmarkReplicasDatabaseRestart(b *testing.B) {
	for b.Loop() {
		b.ReportMetric(restartDuringWave(b, 1000).Seconds(), "s-after-back")
	}
}

// restartDuringWave stores grants expiring over 5 s on three replicas,
// stops the database 1 s into the wave and starts it 6 s later. It checks
// that every grant ended once and returns how long after the database was
// back the last one ended.
func restartDuringWave(t testing.TB, grants int) time.Duration {
	t.Helper()
	pg := pgtest.Start(t)
	// Leases outlast the outage: results are recorded when it is over,
	// not redone by another replica.
	c := newCluster(t, pg.AdminDSNFor(pg.CreateDatabase(t)), 3, time.Minute)
	wave := time.Now().Add(4 * time.Second)
	storeActive(t, c.replicas[0].store, grants, func(i int) time.Time {
		return wave.Add(time.Duration(i) * 5 * time.Second / time.Duration(grants))
	})
	if time.Now().After(wave) {
		t.Fatal("setup overran the start of the wave")
	}
	c.start(t)
	time.Sleep(time.Until(wave.Add(time.Second)))
	pg.Stop(t)
	time.Sleep(time.Until(wave.Add(7 * time.Second)))
	pg.Start(t)
	back := time.Now()
	c.waitSettled(t, 90*time.Second)
	all, err := c.replicas[1].store.ListRequests(context.Background(), lapse.RequestFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var last time.Time
	for _, r := range all {
		if r.State != lapse.StateEnded {
			t.Errorf("grant %s is %s", r.ID, r.State)
			continue
		}
		if r.EndedAt.After(last) {
			last = r.EndedAt
		}
		if n := c.conn.Revocations(r.ID); n != 1 {
			t.Errorf("grant %s revoked %d times at the target", r.ID, n)
		}
	}
	if len(all) != grants {
		t.Errorf("%d grants stored, want %d", len(all), grants)
	}
	c.check(t)
	return last.Sub(back)
}
