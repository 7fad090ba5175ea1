package sqlstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
	"github.com/lapse-access/lapse/sqlstore"
)

// sentinel is a due time no request has: the test announces it itself to
// learn that every notification committed before it has arrived.
var sentinel = time.Unix(0, 1).UTC()

// dueWatch follows the due times a listener hears and keeps, as a
// scheduler does, the time it is armed for: what NextDue last returned,
// or an earlier time announced since NextDue was called.
type dueWatch struct {
	mu        sync.Mutex
	heard     []time.Time
	armed     time.Time // zero: nothing armed
	connected chan struct{}
	synced    chan struct{}
}

func watchDue(t *testing.T, s *sqlstore.Store) *dueWatch {
	t.Helper()
	l, err := s.Listener()
	if err != nil {
		t.Fatal(err)
	}
	w := &dueWatch{connected: make(chan struct{}, 1), synced: make(chan struct{}, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	var done sync.WaitGroup
	done.Go(func() {
		_ = l.Run(ctx, func(at time.Time) {
			switch {
			case at.IsZero():
				select {
				case w.connected <- struct{}{}:
				default:
				}
			case at.Equal(sentinel):
				w.synced <- struct{}{}
			default:
				w.mu.Lock()
				w.heard = append(w.heard, at)
				if w.armed.IsZero() || at.Before(w.armed) {
					w.armed = at
				}
				w.mu.Unlock()
			}
		}, nil)
	})
	t.Cleanup(func() { cancel(); done.Wait() })
	select {
	case <-w.connected:
	case <-time.After(10 * time.Second):
		t.Fatal("the listener did not connect")
	}
	return w
}

// arm calls NextDue as a scheduler does and arms at what it returns, or
// at an earlier time announced while it asked.
func (w *dueWatch) arm(t *testing.T, s *sqlstore.Store) time.Time {
	t.Helper()
	w.mu.Lock()
	from := len(w.heard)
	w.mu.Unlock()
	next, ok, err := s.NextDue(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = time.Time{}
	if ok {
		w.armed = next
	}
	for _, at := range w.heard[from:] {
		if w.armed.IsZero() || at.Before(w.armed) {
			w.armed = at
		}
	}
	return w.armed
}

// sync waits until every notification committed so far has arrived. The
// sentinel is announced as a due time in the past, so a scheduler would
// ask NextDue again at once, as sync does.
func (w *dueWatch) sync(t *testing.T, s *sqlstore.Store) {
	t.Helper()
	w.syncOnly(t, s)
	w.arm(t, s)
}

// syncOnly waits until every notification committed so far has arrived.
func (w *dueWatch) syncOnly(t *testing.T, s *sqlstore.Store) {
	t.Helper()
	err := s.Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error {
		r := lapse.Request{ID: fmt.Sprintf("sentinel-%d", rand.Int64()), User: "x", Resource: "db", Role: "read",
			State: lapse.StateEnded, CreatedAt: sentinel}
		if err := tx.CreateRequest(ctx, &r); err != nil {
			return err
		}
		// Announced directly: the sentinel is earlier than any due time.
		r.NextAt = sentinel
		if err := tx.UpdateRequest(ctx, &r); err != nil {
			return err
		}
		r.NextAt = time.Time{}
		return tx.UpdateRequest(ctx, &r)
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.synced:
	case <-time.After(10 * time.Second):
		t.Fatal("the sentinel notification did not arrive")
	}
}

func (w *dueWatch) heardCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.heard)
}

// createDue stores a request due at at, and keeps its transaction open
// for linger after that, as a slower one would.
func createDue(t *testing.T, s *sqlstore.Store, id string, at time.Time, linger time.Duration) {
	t.Helper()
	err := s.Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error {
		r := lapse.Request{ID: id, User: "alice", Resource: "db", Role: "read", State: lapse.StateActive,
			CreatedAt: at, NextAt: at}
		if err := tx.CreateRequest(ctx, &r); err != nil {
			return err
		}
		time.Sleep(linger)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPostgresDueAnnounced checks that a due time is announced to the
// servers only when it is earlier than the time a server last asked
// NextDue for, or when no server has asked.
func TestPostgresDueAnnounced(t *testing.T) {
	stores := openServers(t, 2)
	w := watchDue(t, stores[1])
	t0 := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)

	createDue(t, stores[0], "first", t0, 0)
	w.sync(t, stores[0])
	if n := w.heardCount(); n != 1 {
		t.Fatalf("before any server asked, %d due times were announced, want 1", n)
	}
	if got := w.arm(t, stores[0]); !got.Equal(t0) {
		t.Fatalf("NextDue armed at %v, want %v", got, t0)
	}
	createDue(t, stores[0], "later", t0.Add(time.Hour), 0)
	createDue(t, stores[1], "same", t0, 0)
	w.sync(t, stores[0])
	if n := w.heardCount(); n != 1 {
		t.Errorf("due times at or after the armed time were announced: %d notifications, want 1", n)
	}
	createDue(t, stores[1], "earlier", t0.Add(-time.Minute), 0)
	w.sync(t, stores[0])
	if n := w.heardCount(); n != 2 {
		t.Errorf("an earlier due time gave %d notifications in all, want 2", n)
	}
	createDue(t, stores[0], "between", t0.Add(-time.Second), 0)
	w.sync(t, stores[0])
	if n := w.heardCount(); n != 2 {
		t.Errorf("a due time after an announced one gave %d notifications in all, want 2", n)
	}
}

// TestPostgresDueNeverMissed has writers on two servers create requests
// due at random times, and end their earliest ones as schedulers do, while
// a third server keeps asking NextDue: whatever the interleaving, the time
// it is armed for at the end is not later than the earliest due time. The
// window that the advisory lock closes (a writer deciding against
// announcing while a server asks) is narrow, and this test seldom hits it;
// it checks the property as a whole under concurrent writers.
func TestPostgresDueNeverMissed(t *testing.T) {
	stores := openServers(t, 3)
	w := watchDue(t, stores[2])
	t0 := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	const writers, each = 4, 80

	stop := make(chan struct{})
	var asker sync.WaitGroup
	asker.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				w.arm(t, stores[2])
			}
		}
	})
	var wg sync.WaitGroup
	live := make([]map[string]time.Time, writers)
	for i := range writers {
		s := stores[i%2]
		live[i] = map[string]time.Time{}
		wg.Go(func() {
			for j := range each {
				id := fmt.Sprintf("w%d-%d", i, j)
				at := t0.Add(time.Duration(rand.IntN(3600)) * time.Second)
				createDue(t, s, id, at, time.Duration(rand.IntN(3000))*time.Microsecond)
				live[i][id] = at
				if rand.IntN(10) != 0 {
					// End the earliest: the earliest due time moves later.
					first := id
					for id, at := range live[i] {
						if at.Before(live[i][first]) {
							first = id
						}
					}
					endDue(t, s, first)
					delete(live[i], first)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	asker.Wait()
	var earliest time.Time
	for _, m := range live {
		for _, at := range m {
			if earliest.IsZero() || at.Before(earliest) {
				earliest = at
			}
		}
	}
	// Once the sentinel has arrived, so has every notification committed
	// before it; the time armed then must cover every due time.
	w.syncOnly(t, stores[0])
	w.mu.Lock()
	armed, heard := w.armed, len(w.heard)
	w.mu.Unlock()
	if armed.IsZero() || armed.After(earliest) {
		t.Errorf("armed at %v after %d requests, the earliest due at %v: a due time was missed", armed, writers*each, earliest)
	}
	t.Logf("%d requests, %d announced", writers*each, heard)
}

// endDue clears the due time of request id.
func endDue(t *testing.T, s *sqlstore.Store, id string) {
	t.Helper()
	err := s.Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error {
		r, err := tx.GetRequest(ctx, id)
		if err != nil {
			return err
		}
		r.State, r.NextAt = lapse.StateEnded, time.Time{}
		return tx.UpdateRequest(ctx, &r)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPostgresDueLoweringNoDeadlock has two transactions lower the
// announced due time and then touch each other's request: the first waits
// for the second's row as it would without announcements, and nothing
// deadlocks on the watermark's row.
func TestPostgresDueLoweringNoDeadlock(t *testing.T) {
	ctx := t.Context()
	srv := pgtest.Shared(t)
	dsn := srv.AdminDSNFor(srv.CreateDatabase(t))
	s, err := sqlstore.OpenPostgres(ctx, dsn, sqlstore.PostgresOptions{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	t0 := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	createDue(t, s, "a", t0, 0)
	createDue(t, s, "b", t0, 0)
	if _, _, err := s.NextDue(ctx); err != nil { // the watermark is t0
		t.Fatal(err)
	}
	w1, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close(context.Background())
	w2, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close(context.Background())
	early := t0.Add(-time.Hour).UnixNano()
	for _, c := range []*pgx.Conn{w1, w2} {
		if _, err := c.Exec(ctx, "begin"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w1.Exec(ctx, "UPDATE requests SET next_at = $1 WHERE id = 'a'", early); err != nil {
		t.Fatal(err)
	}
	// Before, this waited for the first transaction's lock on the
	// watermark's row while holding b's.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := w2.Exec(wctx, "UPDATE requests SET next_at = $1 WHERE id = 'b'", early+1); err != nil {
		t.Fatalf("second lowering: %v", err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := w1.Exec(ctx, "UPDATE requests SET next_at = $1 WHERE id = 'b'", early+2)
		errc <- err
	}()
	if _, err := w2.Exec(ctx, "commit"); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("first transaction, after the second committed: %v", err)
	}
	if _, err := w1.Exec(ctx, "commit"); err != nil {
		t.Fatal(err)
	}
}
