package monitor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest"
)

// session returns a session activity with key k, started at start.
func session(k string) lapse.Activity {
	return lapse.Activity{Key: k, Kind: "session", At: start, Details: map[string]string{"application_name": "psql-" + k}}
}

func TestActivityIsRecordedOnce(t *testing.T) {
	t.Parallel()
	st, clock, fake := openStore(t), newClock(), lapsetest.NewSampler()
	s := newSampler(st, map[string]lapse.Connector{"orders-db": fake}, clock)
	r := activeRequest(t, st, "g-1", "alice", "orders-db", "ref-g-1", start)
	a1, a2 := session("pid 1"), session("pid 2")

	fake.SetActivity(r.ID, a1)
	clock.Advance(time.Second)
	if n, err := s.SampleOnce(t.Context()); err != nil || n != 1 {
		t.Fatalf("first SampleOnce = %d, %v; want 1, nil", n, err)
	}
	evs, acts := activityEvents(t, st, "")
	if len(evs) != 1 {
		t.Fatalf("%d activity events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.RequestID != r.ID || ev.User != r.User || ev.Resource != r.Resource || ev.Role != r.Role ||
		ev.Actor != "lapse" || ev.From != "" || ev.To != "" || !ev.Time.Equal(start.Add(time.Second)) {
		t.Errorf("event = %+v", ev)
	}
	if diff := cmp.Diff(a1, acts[0]); diff != "" {
		t.Errorf("event data (-want +got):\n%s", diff)
	}

	// The same session sampled again is not recorded again.
	if n, err := s.SampleOnce(t.Context()); err != nil || n != 0 {
		t.Fatalf("second SampleOnce = %d, %v; want 0, nil", n, err)
	}
	// A new one is, once, however often the target shows it in one sample.
	fake.SetActivity(r.ID, a1, a2, a2)
	if n, err := s.SampleOnce(t.Context()); err != nil || n != 1 {
		t.Fatalf("third SampleOnce = %d, %v; want 1, nil", n, err)
	}
	_, acts = activityEvents(t, st, r.ID)
	if len(acts) != 2 || acts[1].Key != a2.Key {
		t.Errorf("activities = %+v, want pid 1 then pid 2", acts)
	}
	verifyChain(t, st)
}

func TestRestartRecordsNothingTwice(t *testing.T) {
	t.Parallel()
	st, clock, fake := openStore(t), newClock(), lapsetest.NewSampler()
	conns := map[string]lapse.Connector{"orders-db": fake}
	r := activeRequest(t, st, "g-1", "alice", "orders-db", "ref-g-1", start)
	fake.SetActivity(r.ID, session("pid 1"), session("pid 2"))
	if n, err := newSampler(st, conns, clock).SampleOnce(t.Context()); err != nil || n != 2 {
		t.Fatalf("SampleOnce before the restart = %d, %v; want 2, nil", n, err)
	}

	// A new sampler knows nothing in memory; the audit log tells it.
	fake.SetActivity(r.ID, session("pid 1"), session("pid 2"), session("pid 3"))
	s := newSampler(st, conns, clock)
	if n, err := s.SampleOnce(t.Context()); err != nil || n != 1 {
		t.Fatalf("SampleOnce after the restart = %d, %v; want 1 (pid 3 only), nil", n, err)
	}
	_, acts := activityEvents(t, st, r.ID)
	var got []string
	for _, a := range acts {
		got = append(got, a.Key)
	}
	if diff := cmp.Diff([]string{"pid 1", "pid 2", "pid 3"}, got); diff != "" {
		t.Errorf("recorded keys (-want +got):\n%s", diff)
	}
}

func TestRestartWithManyRecordedActivities(t *testing.T) {
	t.Parallel()
	st, clock, fake := openStore(t), newClock(), lapsetest.NewSampler()
	conns := map[string]lapse.Connector{"orders-db": fake}
	r := activeRequest(t, st, "g-1", "alice", "orders-db", "ref-g-1", start)
	// More than one page of the audit log.
	var acts []lapse.Activity
	for i := range 1500 {
		acts = append(acts, session(fmt.Sprintf("pid %d", i)))
	}
	fake.SetActivity(r.ID, acts...)
	if n, err := newSampler(st, conns, clock).SampleOnce(t.Context()); err != nil || n != len(acts) {
		t.Fatalf("SampleOnce before the restart = %d, %v; want %d, nil", n, err, len(acts))
	}
	if n, err := newSampler(st, conns, clock).SampleOnce(t.Context()); err != nil || n != 0 {
		t.Fatalf("SampleOnce after the restart = %d, %v; want 0, nil", n, err)
	}
}

func TestOnlyActiveGrantsOfSamplingConnectorsAreSampled(t *testing.T) {
	t.Parallel()
	st, clock := openStore(t), newClock()
	fake, plain := lapsetest.NewSampler(), lapsetest.NewConnector()
	s := newSampler(st, map[string]lapse.Connector{"orders-db": fake, "tokens": plain}, clock)

	activeRequest(t, st, "g-active", "alice", "orders-db", "ref-1", start)
	activeRequest(t, st, "g-plain", "alice", "tokens", "ref-2", start)
	activeRequest(t, st, "g-unknown", "alice", "gone-db", "ref-3", start)
	ended := activeRequest(t, st, "g-ended", "alice", "orders-db", "ref-4", start)
	ended, _ = ended.Release("alice", start)
	updateRequest(t, st, ended)
	pending, _ := lapse.NewRequest(lapse.Request{ID: "g-pending", User: "bob", Resource: "orders-db", Role: "read", Reason: "x", Duration: time.Hour}, 1, time.Hour, start)
	putRequest(t, st, pending)
	for _, id := range []string{"g-active", "g-plain", "g-unknown", "g-ended", "g-pending"} {
		fake.SetActivity(id, session("pid "+id))
	}
	var mu sync.Mutex
	var asked []string
	fake.OnSample = func(_ context.Context, g lapse.Grant) {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, g.ID)
	}

	if n, err := s.SampleOnce(t.Context()); err != nil || n != 1 {
		t.Fatalf("SampleOnce = %d, %v; want 1, nil", n, err)
	}
	if diff := cmp.Diff([]string{"g-active"}, asked); diff != "" {
		t.Errorf("sampled grants (-want +got):\n%s", diff)
	}
}

func TestGrantIsPassedWithItsRef(t *testing.T) {
	t.Parallel()
	st, clock, fake := openStore(t), newClock(), lapsetest.NewSampler()
	s := newSampler(st, map[string]lapse.Connector{"orders-db": fake}, clock)
	r := activeRequest(t, st, "g-1", "alice", "orders-db", "lapse_alice_g1", start)
	var got lapse.Grant
	fake.OnSample = func(_ context.Context, g lapse.Grant) { got = g }
	if _, err := s.SampleOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	want := lapse.Grant{ID: r.ID, User: r.User, Resource: r.Resource, Role: r.Role, ExpiresAt: r.ExpiresAt, Ref: r.Ref, Reason: r.Reason}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("grant (-want +got):\n%s", diff)
	}
}

func TestSampleFailureIsIsolated(t *testing.T) {
	t.Parallel()
	st, clock := openStore(t), newClock()
	down, up := lapsetest.NewSampler(), lapsetest.NewSampler()
	s := newSampler(st, map[string]lapse.Connector{"down-db": down, "up-db": up}, clock)
	activeRequest(t, st, "g-down", "alice", "down-db", "ref-1", start)
	activeRequest(t, st, "g-up", "alice", "up-db", "ref-2", start)
	down.SetActivity("g-down", session("pid 1"))
	up.SetActivity("g-up", session("pid 2"))
	errDown := errors.New("connection refused")
	down.SetFailSample(errDown)

	n, err := s.SampleOnce(t.Context())
	if n != 1 || !errors.Is(err, errDown) || !strings.Contains(err.Error(), "g-down") {
		t.Fatalf("SampleOnce = %d, %v; want 1 and the error of g-down", n, err)
	}
	if evs, _ := activityEvents(t, st, "g-up"); len(evs) != 1 {
		t.Errorf("%d events of g-up, want 1", len(evs))
	}

	down.SetFailSample(nil)
	if n, err := s.SampleOnce(t.Context()); err != nil || n != 1 {
		t.Fatalf("SampleOnce after recovery = %d, %v; want 1, nil", n, err)
	}
	if evs, _ := activityEvents(t, st, "g-down"); len(evs) != 1 {
		t.Errorf("%d events of g-down, want 1", len(evs))
	}
}

// countingStore counts transactions, and fails them while fail is set.
type countingStore struct {
	lapse.Store
	txs  atomic.Int32
	fail atomic.Pointer[error]
}

func (s *countingStore) Tx(ctx context.Context, fn func(ctx context.Context, tx lapse.Tx) error) error {
	s.txs.Add(1)
	if err := s.fail.Load(); err != nil {
		return *err
	}
	return s.Store.Tx(ctx, fn)
}

func TestFailedCommitIsRetried(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: openStore(t)}
	clock, fake := newClock(), lapsetest.NewSampler()
	s := newSampler(st, map[string]lapse.Connector{"orders-db": fake}, clock)
	r := activeRequest(t, st.Store, "g-1", "alice", "orders-db", "ref", start)
	fake.SetActivity(r.ID, session("pid 1"))
	errDisk := errors.New("disk full")
	st.fail.Store(&errDisk)
	if n, err := s.SampleOnce(t.Context()); n != 0 || !errors.Is(err, errDisk) {
		t.Fatalf("SampleOnce with a failing store = %d, %v; want 0 and the store's error", n, err)
	}
	st.fail.Store(nil)
	if n, err := s.SampleOnce(t.Context()); err != nil || n != 1 {
		t.Fatalf("SampleOnce after recovery = %d, %v; want 1, nil", n, err)
	}
	if n, err := s.SampleOnce(t.Context()); err != nil || n != 0 {
		t.Fatalf("third SampleOnce = %d, %v; want 0, nil", n, err)
	}
}

func TestOnePassIsOneTransaction(t *testing.T) {
	t.Parallel()
	st := &countingStore{Store: openStore(t)}
	clock, fake := newClock(), lapsetest.NewSampler()
	s := newSampler(st, map[string]lapse.Connector{"orders-db": fake}, clock)
	for _, id := range []string{"g-1", "g-2", "g-3"} {
		activeRequest(t, st.Store, id, "alice", "orders-db", "ref-"+id, start)
		fake.SetActivity(id, session("pid 1 of "+id), session("pid 2 of "+id))
	}
	if n, err := s.SampleOnce(t.Context()); err != nil || n != 6 {
		t.Fatalf("SampleOnce = %d, %v; want 6, nil", n, err)
	}
	if n := st.txs.Load(); n != 1 {
		t.Errorf("%d transactions, want 1", n)
	}
	// Nothing new: no transaction at all.
	if n, err := s.SampleOnce(t.Context()); err != nil || n != 0 {
		t.Fatalf("second SampleOnce = %d, %v; want 0, nil", n, err)
	}
	if n := st.txs.Load(); n != 1 {
		t.Errorf("%d transactions after a pass with nothing new, want 1", n)
	}
	verifyChain(t, st)
}

func TestConcurrencyIsBounded(t *testing.T) {
	t.Parallel()
	st, clock, fake := openStore(t), newClock(), lapsetest.NewSampler()
	s := newSampler(st, map[string]lapse.Connector{"orders-db": fake}, clock)
	s.Concurrency = 2
	for i := range 8 {
		activeRequest(t, st, "g-"+string(rune('a'+i)), "alice", "orders-db", "ref", start)
	}
	var inFlight, most atomic.Int32
	fake.OnSample = func(context.Context, lapse.Grant) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := s.SampleOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if m := most.Load(); m < 1 || m > 2 {
		t.Errorf("at most %d calls in flight, want 1 or 2", m)
	}
	if n := fake.Calls("SampleActivity"); n != 8 {
		t.Errorf("SampleActivity called %d times, want 8", n)
	}
}

func TestCallTimeout(t *testing.T) {
	t.Parallel()
	st, clock, fake := openStore(t), newClock(), lapsetest.NewSampler()
	s := newSampler(st, map[string]lapse.Connector{"orders-db": fake}, clock)
	s.CallTimeout = 20 * time.Millisecond
	activeRequest(t, st, "g-1", "alice", "orders-db", "ref", start)
	fake.OnSample = func(ctx context.Context, _ lapse.Grant) { <-ctx.Done() }
	if _, err := s.SampleOnce(t.Context()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("SampleOnce = %v, want a deadline error", err)
	}
}

func TestRunSamplesAtStartAndEveryInterval(t *testing.T) {
	t.Parallel()
	st, clock, fake := openStore(t), newClock(), lapsetest.NewSampler()
	s := newSampler(st, map[string]lapse.Connector{"orders-db": fake}, clock)
	s.Interval = 30 * time.Second
	r := activeRequest(t, st, "g-1", "alice", "orders-db", "ref", start)
	fake.SetActivity(r.ID, session("pid 1"))
	count := func() int {
		evs, _ := activityEvents(t, st, r.ID)
		return len(evs)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, "the first pass", func() bool { return count() == 1 && clock.Timers() == 1 })

	fake.SetActivity(r.ID, session("pid 1"), session("pid 2"))
	clock.Advance(29 * time.Second)
	time.Sleep(20 * time.Millisecond)
	if n := fake.Calls("SampleActivity"); n != 1 {
		t.Fatalf("SampleActivity called %d times before the interval passed, want 1", n)
	}
	clock.Advance(time.Second)
	waitFor(t, "the second pass", func() bool { return count() == 2 && clock.Timers() == 1 })

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
}
