package expiry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lapse-access/lapse"
)

// Target resolves the connector of a request's resource and the role's
// connector settings.
type Target func(resource, role string) (lapse.Connector, any, error)

// Scheduler runs timed and retried work on requests. Set the exported
// fields before Run; the zero values of the tunables get defaults.
type Scheduler struct {
	Store  lapse.Store
	Target Target
	Clock  lapse.Clock
	// Sealer encrypts credentials that wait for their requester.
	Sealer lapse.Sealer
	Logger *slog.Logger
	// Owner names this scheduler in claims. Claims it finds under its own
	// name at start are left over from a crash and are released.
	Owner string

	// Lease is how long a claim lasts; default 2 minutes. It must be longer
	// than CallTimeout.
	Lease time.Duration
	// CallTimeout bounds each connector call; default 30 s.
	CallTimeout time.Duration
	// BatchSize is how many due requests one transaction claims; default
	// 2000, or 300 with Announced.
	BatchSize int
	// Concurrency bounds connector calls in flight; default 16.
	Concurrency int
	// BackoffBase and BackoffMax shape the retry delay: base·2^(n−1), capped,
	// with jitter. Defaults 1 s and 30 s.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// ProvisionAttempts is how often provisioning is tried before the request
	// fails; default 5.
	ProvisionAttempts int
	// StuckAfter is the number of failed revocation attempts after which
	// each further failure is logged as an error; default 10.
	StuckAfter int
	// Coalesce is the least time between two busy passes over due work
	// that the timer starts, so that a dense stream of expiries is claimed
	// in batches rather than one transaction each; default 100 ms. A pass
	// that found little to do does not delay the next, and Notify starts a
	// pass at once.
	Coalesce time.Duration
	// ProbeInterval is how often a target that is down is probed, for
	// connectors that implement [lapse.Pinger]; default 500 ms. When it
	// answers again, the retries waiting for it are made due at once.
	ProbeInterval time.Duration
	// Announced says that the store announces every new due time to
	// NotifyAt, as a database shared by several servers does: the
	// scheduler then neither wakes itself after recording results nor on
	// Notify, which would only repeat the announcements.
	Announced bool
	// OnEnded, if set, is called after a grant's revocation is confirmed.
	OnEnded func(r lapse.Request)

	wake chan struct{}
	once sync.Once

	// down holds the targets found unreachable, with the last error.
	downMu sync.Mutex
	down   map[lapse.Connector]string

	// armed is when the Run loop's timer fires, in Unix nanoseconds:
	// [Scheduler.NotifyAt] wakes the loop for an earlier time only.
	// math.MaxInt64 while the loop computes it, so that then every
	// notification wakes it.
	armed atomic.Int64

	// inFlight counts requests claimed for the workers and not yet
	// recorded; starved is set when due work waits for room.
	inFlight atomic.Int64
	starved  atomic.Bool
	// short is set when the last pass left due work for lack of room.
	short atomic.Bool
}

func (s *Scheduler) init() {
	s.once.Do(func() {
		s.wake = make(chan struct{}, 1)
		s.armed.Store(math.MaxInt64)
		if s.Logger == nil {
			s.Logger = slog.Default().With("system", "expiry")
		}
		if s.Clock == nil {
			s.Clock = lapse.SystemClock{}
		}
		if s.Owner == "" {
			s.Owner = "local"
		}
		if s.Lease <= 0 {
			s.Lease = 2 * time.Minute
		}
		if s.CallTimeout <= 0 {
			s.CallTimeout = 30 * time.Second
		}
		if s.BatchSize <= 0 {
			s.BatchSize = 2000
			if s.Announced {
				// Several servers share the due work: smaller batches let
				// each take its own part at once (claims skip the rows
				// another server's pass holds).
				s.BatchSize = 300
			}
		}
		if s.Concurrency <= 0 {
			s.Concurrency = 16
		}
		if s.BackoffBase <= 0 {
			s.BackoffBase = time.Second
		}
		if s.BackoffMax <= 0 {
			s.BackoffMax = 30 * time.Second
		}
		if s.ProvisionAttempts <= 0 {
			s.ProvisionAttempts = 5
		}
		if s.StuckAfter <= 0 {
			s.StuckAfter = 10
		}
		if s.ProbeInterval <= 0 {
			s.ProbeInterval = 500 * time.Millisecond
		}
		s.down = map[lapse.Connector]string{}
		if s.Coalesce <= 0 {
			s.Coalesce = 100 * time.Millisecond
		}
	})
}

// Notify tells the scheduler that requests changed, so that it looks again
// for the earliest due time. It never blocks. With Announced it does
// nothing: the store's announcements, through NotifyAt, say the same.
func (s *Scheduler) Notify() {
	if s.Announced {
		return
	}
	s.wakeUp()
}

// wakeUp starts a pass over due work. It never blocks.
func (s *Scheduler) wakeUp() {
	s.init()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// NotifyAt tells the scheduler that a request became due at t, for
// example by another server sharing the store. It wakes the scheduler
// only if t is before the time its timer is armed for; a zero t always
// wakes it. It never blocks.
func (s *Scheduler) NotifyAt(t time.Time) {
	s.init()
	if !t.IsZero() && t.UnixNano() >= s.armed.Load() {
		return
	}
	s.wakeUp()
}

// busyPass is the number of due requests in one pass from which the next
// pass waits for Coalesce.
const busyPass = 16

// Recover releases the claims that a crash of this owner left behind, so
// that their work is done again at once rather than when their leases end.
// Call it once at start, before Run and before anything else claims work
// under this owner.
func (s *Scheduler) Recover(ctx context.Context) error {
	s.init()
	var released int
	err := s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		var err error
		released, err = tx.ReleaseClaims(ctx, s.Owner, s.Clock.Now())
		return err
	})
	if err != nil {
		return fmt.Errorf("release claims: %w", err)
	}
	if released > 0 {
		s.Logger.Info("released claims left by a previous run", "count", released)
	}
	return nil
}

// Run processes due work until ctx is cancelled, then waits for connector
// calls in flight and returns nil. Everything already overdue is processed
// first.
func (s *Scheduler) Run(ctx context.Context) error {
	s.init()
	work := make(chan lapse.Request, s.BatchSize)
	results := make(chan result, s.BatchSize)
	var workers, completer sync.WaitGroup
	for range s.Concurrency {
		workers.Go(func() {
			for r := range work {
				results <- s.work(ctx, r)
			}
		})
	}
	completer.Go(func() { s.complete(ctx, results) })
	var prober sync.WaitGroup
	prober.Go(func() { s.probe(ctx) })
	defer func() {
		close(work)
		workers.Wait()
		close(results)
		completer.Wait()
		prober.Wait()
	}()

	var timer lapse.Timer
	for {
		lastPass := s.Clock.Now()
		seen, err := s.drain(ctx, work)
		if err != nil && ctx.Err() == nil {
			s.Logger.Error("claim due work", "err", err)
		}
		if timer != nil {
			timer.Stop()
		}
		s.armed.Store(math.MaxInt64)
		next, ok, err := s.Store.NextDue(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			s.Logger.Error("find next due time", "err", err)
			next, ok = s.Clock.Now().Add(s.BackoffBase), true
		}
		var fire <-chan time.Time
		if s.starved.Load() {
			// Due work waits for a worker: the completer's Notify starts
			// the next pass.
			next, ok = s.Clock.Now().Add(s.Coalesce), true
		}
		if ok {
			// Under load, wait a little so that the next pass claims a
			// batch; a quiet scheduler acts at the due instant.
			if earliest := lastPass.Add(s.Coalesce); seen >= busyPass && next.Before(earliest) {
				next = earliest
			}
			s.armed.Store(next.UnixNano())
			timer = s.Clock.NewTimer(next.Sub(s.Clock.Now()))
			fire = timer.C()
		} else {
			s.armed.Store(math.MaxInt64 - 1)
			timer = nil
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil
		case <-fire:
		case <-s.wake:
		}
	}
}

// drain claims every due request, batch by batch, and hands connector work
// to the workers.
func (s *Scheduler) drain(ctx context.Context, work chan<- lapse.Request) (int, error) {
	total := 0
	for ctx.Err() == nil {
		claimed, n, err := s.claimDue(ctx)
		total += n
		if err != nil {
			return total, err
		}
		for _, r := range claimed {
			select {
			case work <- r:
			case <-ctx.Done():
				return total, nil
			}
		}
		if n < s.BatchSize || s.starved.Load() {
			return total, nil
		}
	}
	return total, nil
}

// claimDue moves one batch of due requests forward in one transaction:
// pending requests time out, expired grants start revoking, and requests
// that need a connector call are claimed. It returns the claimed requests
// and how many due requests it saw.
func (s *Scheduler) claimDue(ctx context.Context) ([]lapse.Request, int, error) {
	var claimed, ended []lapse.Request
	var seen int
	err := s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		claimed, ended = claimed[:0], ended[:0]
		now := s.Clock.Now()
		// Claim no more than the workers can start before the claims'
		// leases run out: a claim waiting in the queue past its lease would
		// be claimed again and worked on twice.
		room := int64(s.Concurrency) - s.inFlight.Load() - int64(len(claimed))
		limit := s.BatchSize
		if s.short.Load() {
			// The last pass had more work than room: lock only about as
			// many rows as can be claimed, and leave the rest to other
			// servers sharing the store (they skip locked rows).
			limit = int(max(room, busyPass))
		}
		due, err := tx.DueRequests(ctx, now, limit)
		if err != nil {
			return err
		}
		seen = len(due)
		short := false
		evs := make([]lapse.AuditEvent, 0, 2*len(due))
		for _, r := range due {
			st, err := s.advance(ctx, r, now, room > 0)
			if err != nil {
				return fmt.Errorf("advance request %s: %w", r.ID, err)
			}
			if st.wait {
				s.starved.Store(true)
				short = true
				continue
			}
			if err := tx.UpdateRequest(ctx, &st.next); err != nil {
				if errors.Is(err, lapse.ErrConflict) {
					continue
				}
				return err
			}
			evs = append(evs, st.events...)
			if st.claim {
				claimed = append(claimed, st.next)
				room--
			}
			if st.next.State == lapse.StateEnded {
				ended = append(ended, st.next)
			}
		}
		s.short.Store(short)
		return tx.AppendAudit(ctx, evs...)
	})
	if err != nil {
		return nil, 0, err
	}
	s.inFlight.Add(int64(len(claimed)))
	if s.OnEnded != nil {
		for _, r := range ended {
			s.OnEnded(r)
		}
	}
	return claimed, seen, nil
}

// step is what advance decided for one due request.
type step struct {
	// next is the value to store; events record its state changes.
	next   lapse.Request
	events []lapse.AuditEvent
	// claim says a connector call follows.
	claim bool
	// wait says the request needs a worker and none is free: it is left
	// as it is for a later pass.
	wait bool
}

// advance decides what a due request needs.
func (s *Scheduler) advance(ctx context.Context, r lapse.Request, now time.Time, room bool) (step, error) {
	switch r.State {
	case lapse.StatePending:
		if now.Before(r.PendingUntil) {
			r.NextAt = r.PendingUntil
			return step{next: r}, nil
		}
		next, err := r.TimeOut(now)
		if err != nil {
			return step{}, err
		}
		ev := lapse.NewAuditEvent(lapse.EvTimedOut, "lapse", r.State, next, map[string]any{"pending_until": r.PendingUntil}, now)
		return step{next: next, events: []lapse.AuditEvent{ev}}, nil
	case lapse.StateApproved:
		if r.StartAt.After(now) {
			r.NextAt = r.StartAt
			return step{next: r}, nil
		}
		if !room {
			return step{wait: true}, nil
		}
		next, err := r.Claim(s.Owner, now, s.Lease)
		return step{next: next, claim: true}, err
	case lapse.StateActive:
		if now.Before(r.ExpiresAt) {
			r.NextAt = r.ExpiresAt
			return step{next: r}, nil
		}
		next, err := r.Expire(now)
		if err != nil {
			return step{}, err
		}
		expired := lapse.NewAuditEvent(lapse.EvExpired, "lapse", r.State, next, map[string]any{"expires_at": r.ExpiresAt}, now)
		if receipt, ok := s.revokeLocally(ctx, next); ok {
			ended, err := next.ConfirmRevoked(now)
			if err != nil {
				return step{}, err
			}
			return step{next: ended, events: []lapse.AuditEvent{expired, endedEvent(next, ended, receipt, now)}}, nil
		}
		if !room {
			return step{wait: true}, nil
		}
		next, err = next.Claim(s.Owner, now, s.Lease)
		return step{next: next, events: []lapse.AuditEvent{expired}, claim: true}, err
	case lapse.StateRevoking:
		if !room {
			return step{wait: true}, nil
		}
		next, err := r.Claim(s.Owner, now, s.Lease)
		return step{next: next, claim: true}, err
	default:
		r.NextAt, r.Owner = time.Time{}, ""
		return step{next: r}, nil
	}
}

// revokeLocally revokes a grant whose connector keeps its access only in
// Lapse's own records, inside the transaction that ends it. It reports
// false when the connector is not such a one or the revocation failed; the
// grant is then revoked by a worker as usual.
func (s *Scheduler) revokeLocally(ctx context.Context, r lapse.Request) (map[string]string, bool) {
	c, g, err := s.grant(r, r.ExpiresAt)
	if err != nil {
		return nil, false
	}
	lr, ok := c.(lapse.LocalRevoker)
	if !ok || !lr.RevokesLocally() {
		return nil, false
	}
	if err := c.Revoke(ctx, g); err != nil {
		return nil, false
	}
	receipt, err := c.VerifyGone(ctx, g)
	if err != nil {
		return nil, false
	}
	return receipt, true
}

// endedEvent records a confirmed revocation of r (revoking), now ended.
func endedEvent(r, ended lapse.Request, receipt map[string]string, now time.Time) lapse.AuditEvent {
	data := map[string]any{"end_reason": r.EndReason, "receipt": receipt}
	if r.EndReason == lapse.EndExpired {
		data["lag_ms"] = float64(now.Sub(r.ExpiresAt).Microseconds()) / 1000
	}
	return lapse.NewAuditEvent(lapse.EvEnded, "lapse", r.State, ended, data, now)
}

// result is the outcome of one connector step, applied in a transaction.
type result struct {
	claimed lapse.Request
	// apply returns the new value and its audit event.
	apply func(now time.Time) (lapse.Request, lapse.AuditEvent, error)
	creds *lapse.Credentials
	// cleanup runs if the request changed under the claim after a
	// successful provisioning, to remove the now unwanted access.
	cleanup func(ctx context.Context)
	// done is set for confirmed revocations.
	done bool
}

// work calls the connector for one claimed request.
func (s *Scheduler) work(ctx context.Context, r lapse.Request) result {
	switch r.State {
	case lapse.StateApproved:
		return s.provision(ctx, r)
	case lapse.StateRevoking:
		return s.revoke(ctx, r)
	}
	return result{claimed: r, apply: func(time.Time) (lapse.Request, lapse.AuditEvent, error) {
		return lapse.Request{}, lapse.AuditEvent{}, fmt.Errorf("request %s is %s: nothing to do", r.ID, r.State)
	}}
}

func (s *Scheduler) grant(r lapse.Request, expires time.Time) (lapse.Connector, lapse.Grant, error) {
	c, settings, err := s.Target(r.Resource, r.Role)
	g := r.Grant(expires, settings)
	return c, g, err
}

func (s *Scheduler) call(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.CallTimeout)
	defer cancel()
	return fn(ctx)
}

func (s *Scheduler) provision(ctx context.Context, r lapse.Request) result {
	start := s.Clock.Now()
	c, g, err := s.grant(r, start.Add(r.Duration))
	if err == nil {
		err = s.checkUp(c)
	}
	var p lapse.Provisioned
	if err == nil {
		err = s.call(ctx, func(ctx context.Context) error {
			var err error
			p, err = c.Provision(ctx, g)
			return err
		})
		if err == nil {
			return result{
				claimed: r,
				creds:   p.Credentials,
				apply: func(now time.Time) (lapse.Request, lapse.AuditEvent, error) {
					next, err := r.Activate(p.Ref, start)
					next.Outputs = p.Outputs
					ev := lapse.NewAuditEvent(lapse.EvProvisioned, "lapse", r.State, next, map[string]any{
						"ref": p.Ref, "expires_at": next.ExpiresAt, "details": p.Details}, now)
					return next, ev, err
				},
				cleanup: func(ctx context.Context) {
					if err := s.call(ctx, func(ctx context.Context) error { return c.Revoke(ctx, g) }); err != nil {
						s.Logger.Error("remove access provisioned for a request that changed meanwhile", "request", r.ID, "err", err)
					}
				},
			}
		}
		s.suspect(ctx, c, err)
	}
	// The last attempt, or one that retrying cannot fix, fails the request.
	final := lapse.IsUnrecoverable(err) || r.Attempts >= s.ProvisionAttempts
	if ctx.Err() != nil {
		// Shutting down: the claim is released at the next start.
		return result{claimed: r}
	}
	msg := err.Error()
	if final {
		// Leave nothing behind: remove what a partial provisioning may have
		// created. If the target cannot confirm that now, the request fails
		// all the same, and the reconciliation sweep removes whatever a
		// failed request left once the target answers.
		var cerr error = errors.New("no connector")
		if c != nil {
			cerr = s.call(ctx, func(ctx context.Context) error { return c.Revoke(ctx, g) })
		}
		cleanup := "done"
		if cerr != nil {
			cleanup = "pending (the reconciliation sweep removes anything left): " + cerr.Error()
			s.Logger.Warn("provisioning failed; cleanup pending", "request", r.ID, "resource", r.Resource, "err", cerr)
		}
		return result{claimed: r, apply: func(now time.Time) (lapse.Request, lapse.AuditEvent, error) {
			next, err := r.ProvisionFailed(msg, time.Time{}, now)
			ev := lapse.NewAuditEvent(lapse.EvFailed, "lapse", r.State, next, map[string]any{"error": msg, "attempts": r.Attempts, "cleanup": cleanup}, now)
			return next, ev, err
		}}
	}
	s.Logger.Warn("provision failed", "request", r.ID, "resource", r.Resource, "attempt", r.Attempts, "err", msg)
	return result{claimed: r, apply: func(now time.Time) (lapse.Request, lapse.AuditEvent, error) {
		retry := now.Add(s.backoff(r.Attempts))
		next, err := r.ProvisionFailed(msg, retry, now)
		ev := lapse.NewAuditEvent(lapse.EvProvisionFailed, "lapse", r.State, next, map[string]any{"error": msg, "attempt": r.Attempts, "retry_at": retry}, now)
		return next, ev, err
	}}
}

func (s *Scheduler) revoke(ctx context.Context, r lapse.Request) result {
	c, g, err := s.grant(r, r.ExpiresAt)
	var receipt map[string]string
	if err == nil {
		err = s.checkUp(c)
	}
	if err == nil {
		if err = s.call(ctx, func(ctx context.Context) error { return c.Revoke(ctx, g) }); err != nil {
			s.suspect(ctx, c, err)
		}
	}
	if err == nil {
		err = s.call(ctx, func(ctx context.Context) error {
			var err error
			receipt, err = c.VerifyGone(ctx, g)
			if err != nil {
				return fmt.Errorf("verify revocation: %w", err)
			}
			return nil
		})
	}
	if err == nil {
		return result{claimed: r, done: true, apply: func(now time.Time) (lapse.Request, lapse.AuditEvent, error) {
			next, err := r.ConfirmRevoked(now)
			return next, endedEvent(r, next, receipt, now), err
		}}
	}
	if ctx.Err() != nil {
		return result{claimed: r}
	}
	msg := err.Error()
	if r.Attempts >= s.StuckAfter {
		s.Logger.Error("revocation stuck", "request", r.ID, "resource", r.Resource, "attempts", r.Attempts, "err", msg)
	} else {
		s.Logger.Warn("revoke failed", "request", r.ID, "resource", r.Resource, "attempt", r.Attempts, "err", msg)
	}
	return result{claimed: r, apply: func(now time.Time) (lapse.Request, lapse.AuditEvent, error) {
		retry := now.Add(s.backoff(r.Attempts))
		next, err := r.RevokeFailed(msg, retry, now)
		ev := lapse.NewAuditEvent(lapse.EvRevokeFailed, "lapse", r.State, next, map[string]any{"error": msg, "attempt": r.Attempts, "retry_at": retry}, now)
		return next, ev, err
	}}
}

// errTargetDown is the error of a call not made because the target is down.
type errTargetDown struct{ last string }

func (e errTargetDown) Error() string { return "target unreachable: " + e.last }

// checkUp returns an error if c's target is known to be down, so that
// retries do not each wait for a timeout while it is; the prober finds out
// when it is back.
func (s *Scheduler) checkUp(c lapse.Connector) error {
	s.downMu.Lock()
	defer s.downMu.Unlock()
	if last, ok := s.down[c]; ok {
		return errTargetDown{last}
	}
	return nil
}

// suspect pings c's target after a failed call, and marks it down if the
// ping fails too.
func (s *Scheduler) suspect(ctx context.Context, c lapse.Connector, callErr error) {
	p, ok := c.(lapse.Pinger)
	if !ok || ctx.Err() != nil || errors.As(callErr, new(errTargetDown)) {
		return
	}
	if err := s.call(ctx, p.Ping); err == nil || ctx.Err() != nil {
		return
	}
	s.downMu.Lock()
	_, was := s.down[c]
	s.down[c] = callErr.Error()
	s.downMu.Unlock()
	if !was {
		s.Logger.Warn("target down; probing until it answers", "err", callErr)
	}
}

// probe pings the targets that are down every ProbeInterval. When one
// answers, the requests waiting to retry on it are made due at once.
func (s *Scheduler) probe(ctx context.Context) {
	for {
		t := s.Clock.NewTimer(s.ProbeInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		s.downMu.Lock()
		var down []lapse.Connector
		for c := range s.down {
			down = append(down, c)
		}
		s.downMu.Unlock()
		for _, c := range down {
			if err := s.call(ctx, c.(lapse.Pinger).Ping); err != nil {
				continue
			}
			s.downMu.Lock()
			delete(s.down, c)
			s.downMu.Unlock()
			n, err := s.expedite(ctx, c)
			if err != nil {
				s.Logger.Error("retry work for a target that is back", "err", err)
				continue
			}
			s.Logger.Info("target is back; retrying now", "requests", n)
			s.wakeUp()
		}
	}
}

// expedite makes due now the unclaimed requests waiting to retry on c.
func (s *Scheduler) expedite(ctx context.Context, c lapse.Connector) (int, error) {
	n := 0
	err := s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		n = 0
		now := s.Clock.Now()
		rs, err := tx.ListRequests(ctx, lapse.RequestFilter{States: []lapse.State{lapse.StateApproved, lapse.StateRevoking}, Limit: 1 << 20})
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r.Owner != "" || !r.NextAt.After(now) || (r.State == lapse.StateApproved && r.StartAt.After(now)) {
				continue
			}
			if rc, _, err := s.Target(r.Resource, r.Role); err != nil || rc != c {
				continue
			}
			r.NextAt = now
			if err := tx.UpdateRequest(ctx, &r); err != nil && !errors.Is(err, lapse.ErrConflict) {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// backoff returns the delay before attempt n+1: base·2^(n−1) capped at max,
// with jitter over its upper half.
func (s *Scheduler) backoff(n int) time.Duration {
	d := s.BackoffBase
	for i := 1; i < n && d < s.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, s.BackoffMax)
	half := d / 2
	return half + rand.N(half+1)
}

// complete commits results as they arrive, as many per transaction as are
// waiting (group commit).
func (s *Scheduler) complete(ctx context.Context, results <-chan result) {
	batch := make([]result, 0, s.BatchSize)
	for r := range results {
		batch = append(batch[:0], r)
	more:
		for len(batch) < s.BatchSize {
			select {
			case r, ok := <-results:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		stored, err := s.commitRetrying(ctx, batch)
		s.inFlight.Add(-int64(len(batch)))
		if s.starved.Swap(false) {
			s.wakeUp()
		}
		if err != nil {
			// Shutting down: the claims are released at the next start.
			s.Logger.Error("record connector results", "count", len(batch), "err", err)
			continue
		}
		// A new due time (an activation's expiry, a retry) may be earlier
		// than the timer; confirmed revocations have none.
		for _, r := range stored {
			if !r.NextAt.IsZero() {
				s.Notify()
				break
			}
		}
	}
}

// commitRetrying commits results, retrying while the store cannot be
// reached (a database restart), so that work done meanwhile is recorded as
// soon as it is back rather than redone when the claims' leases end. It
// gives up when ctx ends, after one last attempt (finished work is
// recorded even while shutting down), and once the claims' lease has
// passed, when others may have taken them over.
func (s *Scheduler) commitRetrying(ctx context.Context, rs []result) ([]lapse.Request, error) {
	wait := s.BackoffBase / 10
	giveUp := s.Clock.Now().Add(s.Lease)
	for {
		stored, err := s.commit(context.WithoutCancel(ctx), rs)
		if err == nil || ctx.Err() != nil || errors.Is(err, lapse.ErrInvalid) || !s.Clock.Now().Before(giveUp) {
			return stored, err
		}
		s.Logger.Warn("record connector results; retrying", "count", len(rs), "err", err)
		t := s.Clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C():
		}
		wait = min(2*wait, s.BackoffBase)
	}
}

// commit applies results in one transaction. Results whose request changed
// under the claim are skipped (and their provisioning undone). It returns
// the stored values, in order; a skipped result's is the zero Request.
func (s *Scheduler) commit(ctx context.Context, rs []result) ([]lapse.Request, error) {
	return s.commitWith(ctx, rs, false)
}

// commitOne commits one result, first optimistically: the store may check
// the request's version only at the commit (one round trip less on a
// shared store), which fails the whole transaction on a conflict; then,
// after a conflict, as commit does.
func (s *Scheduler) commitOne(ctx context.Context, res result) ([]lapse.Request, error) {
	stored, err := s.commitWith(ctx, []result{res}, true)
	if errors.Is(err, lapse.ErrConflict) {
		return s.commitWith(ctx, []result{res}, false)
	}
	return stored, err
}

// commitWith is commit; with orAbort a changed request fails the
// transaction instead of being skipped.
func (s *Scheduler) commitWith(ctx context.Context, rs []result, orAbort bool) ([]lapse.Request, error) {
	stored := make([]lapse.Request, len(rs))
	var changed []result
	err := s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		changed = changed[:0]
		now := s.Clock.Now()
		evs := make([]lapse.AuditEvent, 0, len(rs))
		for i, res := range rs {
			stored[i] = lapse.Request{}
			if res.apply == nil {
				continue
			}
			next, ev, err := res.apply(now)
			if err != nil {
				changed = append(changed, res)
				continue
			}
			var sealed []byte
			if res.creds != nil && res.cleanup != nil {
				if sealed, err = lapse.SealCredentials(s.Sealer, next.ID, res.creds); err != nil {
					return err
				}
				next.CredentialsWaiting = true
			}
			update := tx.UpdateRequest
			if orAbort {
				update = tx.UpdateRequestOrAbort
			}
			if err := update(ctx, &next); err != nil {
				if errors.Is(err, lapse.ErrConflict) && !orAbort {
					changed = append(changed, res)
					continue
				}
				return err
			}
			// Only for a request that is still ours: credentials never wait
			// for one that changed meanwhile.
			if sealed != nil {
				if err := tx.PutSecret(ctx, next.ID, sealed); err != nil {
					return err
				}
			}
			evs = append(evs, ev)
			stored[i] = next
		}
		return tx.AppendAudit(ctx, evs...)
	})
	if err != nil {
		return nil, err
	}
	for _, res := range changed {
		if res.cleanup != nil {
			s.cleanupIfGone(ctx, res)
		}
	}
	if s.OnEnded != nil {
		for i, res := range rs {
			if res.done && stored[i].State == lapse.StateEnded {
				s.OnEnded(stored[i])
			}
		}
	}
	return stored, nil
}

// cleanupIfGone removes access that was provisioned for a request that was
// cancelled or revoked while the provisioning ran.
func (s *Scheduler) cleanupIfGone(ctx context.Context, res result) {
	cur, err := s.Store.GetRequest(ctx, res.claimed.ID)
	if err == nil && (cur.State == lapse.StateApproved || cur.State == lapse.StateActive) {
		return
	}
	res.cleanup(ctx)
}

// Execute runs the connector step of a request that the caller has already
// claimed (stored with [lapse.Request.Claim] under this scheduler's Owner),
// records the outcome, and returns the stored request. With deliver, fresh
// credentials are returned to the caller and not stored; otherwise they are
// sealed in the store for the requester to fetch once.
func (s *Scheduler) Execute(ctx context.Context, r lapse.Request, deliver bool) (lapse.Request, *lapse.Credentials, error) {
	s.init()
	res := s.work(ctx, r)
	creds := res.creds
	if deliver {
		res.creds = nil
	}
	stored, err := s.commitOne(ctx, res)
	if err != nil {
		return lapse.Request{}, nil, err
	}
	defer s.Notify()
	if stored[0].ID == "" {
		cur, err := s.Store.GetRequest(ctx, r.ID)
		if err != nil {
			return lapse.Request{}, nil, err
		}
		return cur, nil, nil
	}
	if !deliver || stored[0].State != lapse.StateActive {
		creds = nil
	}
	return stored[0], creds, nil
}
