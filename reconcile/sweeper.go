package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/lapse-access/lapse"
)

// Defaults for the zero values of [Sweeper]'s tunables.
const (
	DefaultInterval    = time.Minute
	DefaultCallTimeout = 30 * time.Second
)

// Settle is how long before a listing a request must have last changed for
// its access to count as an orphan. A request that changed more recently
// may have had its access removed by the scheduler while the listing ran;
// it is looked at again at the next sweep.
const Settle = time.Minute

// actor is the audit actor of the events the sweeper writes.
const actor = "lapse"

// Log attribute keys.
const (
	logSystem    = "system"
	logConnector = "connector"
	logRef       = "ref"
	logGrant     = "grant"
	logState     = "request_state"
	logRemoved   = "removed"
	logReceipt   = "receipt"
	logErr       = "err"
)

// Sweeper removes orphaned accesses from the targets of its connectors.
// Set the exported fields before the first Sweep or Run; the zero values
// of the tunables get defaults.
type Sweeper struct {
	// Store holds the requests that accesses are checked against, and
	// receives the audit events.
	Store lapse.Store
	// Connectors are the connectors to sweep, by connector name. The name
	// goes into logs and audit events.
	Connectors map[string]lapse.Connector
	// Clock is the only source of time; nil means [lapse.SystemClock].
	Clock lapse.Clock
	// Logger receives the sweeper's logs; nil means slog.Default() with
	// system=reconcile.
	Logger *slog.Logger
	// Interval is the time from the end of one sweep to the start of the
	// next in Run; default [DefaultInterval].
	Interval time.Duration
	// CallTimeout bounds each connector call; default
	// [DefaultCallTimeout].
	CallTimeout time.Duration

	once sync.Once
}

func (s *Sweeper) init() {
	s.once.Do(func() {
		if s.Clock == nil {
			s.Clock = lapse.SystemClock{}
		}
		if s.Logger == nil {
			s.Logger = slog.Default().With(logSystem, "reconcile")
		}
		if s.Interval <= 0 {
			s.Interval = DefaultInterval
		}
		if s.CallTimeout <= 0 {
			s.CallTimeout = DefaultCallTimeout
		}
	})
}

// Run sweeps at once and then every Interval until ctx is cancelled, and
// returns nil then. Failures are logged and retried at the next sweep.
// Run returns only after the sweep in progress has stopped.
func (s *Sweeper) Run(ctx context.Context) error {
	s.init()
	for ctx.Err() == nil {
		// Sweep logs what failed; the next sweep retries it.
		_, _ = s.Sweep(ctx)
		t := s.Clock.NewTimer(s.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C():
		}
	}
	return nil
}

// Sweep checks every connector once, removes the orphans it finds and
// returns how many it removed. The connectors are swept concurrently; the
// error joins what failed in each (listing, or removing single orphans)
// and is logged as well. Orphans that could not be removed are retried by
// the next call.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	s.init()
	names := slices.Sorted(maps.Keys(s.Connectors))
	removed := make([]int, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { removed[i], errs[i] = s.sweep(ctx, name, s.Connectors[name]) })
	}
	wg.Wait()
	total := 0
	for _, n := range removed {
		total += n
	}
	return total, errors.Join(errs...)
}

// sweep removes the orphans in one connector's target.
func (s *Sweeper) sweep(ctx context.Context, name string, c lapse.Connector) (int, error) {
	listed := s.Clock.Now()
	var existing []lapse.Existing
	err := s.call(ctx, func(ctx context.Context) error {
		var err error
		existing, err = c.List(ctx)
		return err
	})
	if err != nil {
		err = fmt.Errorf("list accesses on %s: %w", name, err)
		if ctx.Err() == nil {
			s.Logger.Error("list accesses", logConnector, name, logErr, err)
		}
		return 0, err
	}
	removed := 0
	var errs []error
	for _, ex := range existing {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		ok, err := s.removeIfOrphan(ctx, name, c, ex, listed)
		if err != nil {
			if ctx.Err() == nil {
				s.Logger.Error("remove orphan", logConnector, name, logRef, ex.Ref, logGrant, ex.GrantID, logErr, err)
			}
			errs = append(errs, err)
			continue
		}
		if ok {
			removed++
		}
	}
	return removed, errors.Join(errs...)
}

// call runs fn with the call timeout.
func (s *Sweeper) call(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.CallTimeout)
	defer cancel()
	return fn(ctx)
}

// removeIfOrphan removes ex if it is an orphan, and reports whether it
// did. listed is when the listing that found ex started.
func (s *Sweeper) removeIfOrphan(ctx context.Context, name string, c lapse.Connector, ex lapse.Existing, listed time.Time) (bool, error) {
	if ex.GrantID == "" {
		return false, fmt.Errorf("access %s on %s names no grant", ex.Ref, name)
	}
	r, found, err := s.request(ctx, ex.GrantID)
	if err != nil {
		return false, err
	}
	if found && !orphaned(r, listed) {
		return false, nil
	}
	g := lapse.Grant{ID: ex.GrantID, Ref: ex.Ref}
	if found {
		g.User, g.Resource, g.Role, g.ExpiresAt = r.User, r.Resource, r.Role, r.ExpiresAt
	}
	if err := s.call(ctx, func(ctx context.Context) error { return c.Revoke(ctx, g) }); err != nil {
		return false, fmt.Errorf("revoke orphan %s on %s: %w", ex.Ref, name, err)
	}
	var receipt map[string]string
	err = s.call(ctx, func(ctx context.Context) error {
		receipt, err = c.VerifyGone(ctx, g)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("verify removal of orphan %s on %s: %w", ex.Ref, name, err)
	}
	// The access is gone: record that even while shutting down.
	state, err := s.record(context.WithoutCancel(ctx), name, ex, receipt)
	if err != nil {
		s.Logger.Error("orphan removed but not recorded", logConnector, name, logRef, ex.Ref, logGrant, ex.GrantID, logReceipt, receipt, logErr, err)
		return false, fmt.Errorf("record removal of orphan %s on %s: %w", ex.Ref, name, err)
	}
	s.Logger.Info("orphan removed", logConnector, name, logRef, ex.Ref, logGrant, ex.GrantID, logState, state)
	return true, nil
}

// request returns the request of a grant id, and false if there is none.
func (s *Sweeper) request(ctx context.Context, id string) (lapse.Request, bool, error) {
	r, err := s.Store.GetRequest(ctx, id)
	switch {
	case errors.Is(err, lapse.ErrNotFound):
		return lapse.Request{}, false, nil
	case err != nil:
		return lapse.Request{}, false, fmt.Errorf("get request %s: %w", id, err)
	}
	return r, true, nil
}

// orphaned reports whether an access of r, found by a listing that started
// at listed, is an orphan.
func orphaned(r lapse.Request, listed time.Time) bool {
	switch r.State {
	case lapse.StateApproved, lapse.StateActive, lapse.StateRevoking:
		return false
	}
	return r.UpdatedAt.Before(listed.Add(-Settle))
}

// record appends the audit event of a removed orphan, with the request's
// fields if it exists, and returns the request's state ("" if there is no
// request).
func (s *Sweeper) record(ctx context.Context, name string, ex lapse.Existing, receipt map[string]string) (lapse.State, error) {
	var state lapse.State
	err := s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		r, err := tx.GetRequest(ctx, ex.GrantID)
		data := map[string]any{"connector": name, "ref": ex.Ref, "grant_id": ex.GrantID, "receipt": receipt}
		switch {
		case errors.Is(err, lapse.ErrNotFound):
			// The grant id is the id its request had or would have had.
			r = lapse.Request{ID: ex.GrantID}
			data["reason"] = "no request"
		case err != nil:
			return err
		default:
			data["reason"] = "request " + string(r.State)
			data["request_state"] = r.State
		}
		state = r.State
		ev := lapse.NewAuditEvent(lapse.EvOrphanRemoved, actor, "", r, data, s.Clock.Now())
		// Removing an orphan changes no request's state.
		ev.To = ""
		return tx.AppendAudit(ctx, ev)
	})
	return state, err
}
