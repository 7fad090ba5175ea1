package lease_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
	"github.com/lapse-access/lapse/lease"
	"github.com/lapse-access/lapse/sqlstore"
)

func TestMain(m *testing.M) { os.Exit(pgtest.MainNoLeaks(m)) }

// Short leases keep the test quick: a holder that dies is replaced
// within ttl plus one renewal interval.
const (
	ttl   = time.Second
	renew = ttl / 4
)

// cuttable is a real store that a test can cut off, as if its server had
// died or lost the database: every call fails from then on, releases too.
type cuttable struct {
	lapse.LeaseStore
	cut atomic.Bool
	// held is when the last call that acquired or renewed a lease began
	// (Unix nanoseconds): the lease it wrote lasts at least ttl from then.
	held atomic.Int64
}

var errCut = errors.New("cut off from the database")

func (c *cuttable) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	if c.cut.Load() {
		return false, errCut
	}
	began := time.Now()
	ok, err := c.LeaseStore.AcquireLease(ctx, name, owner, ttl)
	if ok && err == nil {
		c.held.Store(began.UnixNano())
	}
	return ok, err
}

func (c *cuttable) ReleaseLease(ctx context.Context, name, owner string) error {
	if c.cut.Load() {
		return errCut
	}
	return c.LeaseStore.ReleaseLease(ctx, name, owner)
}

// replica is one server's runner with the work it runs.
type replica struct {
	name   string
	store  *cuttable
	runner *lease.Runner
	cancel context.CancelFunc
	done   chan struct{}
	starts atomic.Int32
}

// ledger records which replicas run the work, and any overlap.
type ledger struct {
	mu      sync.Mutex
	running map[string]bool
	overlap []string
	started chan string
}

func (l *ledger) work(name string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		l.mu.Lock()
		for other := range l.running {
			l.overlap = append(l.overlap, other+" and "+name)
		}
		l.running[name] = true
		l.mu.Unlock()
		l.started <- name
		<-ctx.Done()
		l.mu.Lock()
		delete(l.running, name)
		l.mu.Unlock()
		return nil
	}
}

func openStore(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenPostgres(t.Context(), dsn, sqlstore.PostgresOptions{MaxConns: 4})
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestOneHolderAndTakeover runs three replicas on one database: exactly one
// runs the work; when it is cut off without releasing, it stops its work
// before another replica starts it, within the lease time; when the next
// one shuts down cleanly, the last takes over at once.
func TestOneHolderAndTakeover(t *testing.T) {
	srv := pgtest.Shared(t)
	dsn := srv.AdminDSNFor(srv.CreateDatabase(t))
	l := &ledger{running: map[string]bool{}, started: make(chan string, 10)}
	log := slog.New(slog.DiscardHandler)
	reps := map[string]*replica{}
	for _, name := range []string{"a", "b", "c"} {
		st := &cuttable{LeaseStore: openStore(t, dsn)}
		r := &replica{name: name, store: st, done: make(chan struct{}),
			runner: &lease.Runner{Store: st, Name: "sink/siem", Owner: name, TTL: ttl, Renew: renew, Logger: log}}
		ctx, cancel := context.WithCancel(t.Context())
		r.cancel = cancel
		go func() {
			defer close(r.done)
			_ = r.runner.Run(ctx, l.work(name))
		}()
		reps[name] = r
	}
	t.Cleanup(func() {
		for _, r := range reps {
			r.cancel()
			<-r.done
		}
	})
	next := func(within time.Duration) string {
		t.Helper()
		select {
		case name := <-l.started:
			return name
		case <-time.After(within):
			t.Fatalf("no replica started the work within %s", within)
			return ""
		}
	}
	first := next(5 * time.Second)
	// Several renewals pass; nobody else starts.
	select {
	case other := <-l.started:
		t.Fatalf("%s started the work while %s held the lease", other, first)
	case <-time.After(3 * ttl):
	}
	if !reps[first].runner.Held() {
		t.Fatalf("%s runs the work but does not report holding the lease", first)
	}

	// The holder loses the database: no release reaches it.
	cutAt := time.Now()
	reps[first].store.cut.Store(true)
	second := next(ttl + 2*renew + time.Second)
	took := time.Since(cutAt)
	if second == first {
		t.Fatalf("the cut-off holder %s started the work again", first)
	}
	// The lease the holder last wrote lasted at least ttl from when that
	// renewal began, up to a renewal interval before the cut.
	if sinceRenewal := time.Since(time.Unix(0, reps[first].store.held.Load())); sinceRenewal < ttl {
		t.Errorf("%s took over %s after the holder's last renewal began, before the lease of %s could have expired", second, sinceRenewal, ttl)
	}
	t.Logf("takeover after the holder was cut off: %s (lease %s)", took, ttl)
	if reps[first].runner.Held() {
		t.Errorf("the cut-off replica %s still reports holding the lease", first)
	}

	// A clean shutdown releases the lease: the last replica takes over
	// within one renewal interval, not a whole lease time.
	stopAt := time.Now()
	reps[second].cancel()
	<-reps[second].done
	third := next(renew + time.Second)
	if third == first || third == second {
		t.Fatalf("after %s shut down, %s started the work", second, third)
	}
	t.Logf("takeover after a clean shutdown: %s", time.Since(stopAt))

	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.overlap) > 0 {
		t.Errorf("the work ran on two replicas at once: %v", l.overlap)
	}
}

// TestNoStoreAlwaysHeld is the embedded store: the work runs at once and
// stops with the context.
func TestNoStoreAlwaysHeld(t *testing.T) {
	r := &lease.Runner{Name: "reconcile", Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			return nil
		})
	}()
	<-started
	if !r.Held() {
		t.Error("Held() is false without a store")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if r.Held() {
		t.Error("Held() is true after Run returned")
	}
}
