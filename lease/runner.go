package lease

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/lapse-access/lapse"
)

// Defaults for the zero values of [Runner]'s tunables.
const (
	DefaultTTL = 15 * time.Second
)

// Log attribute keys.
const (
	logLease = "lease"
	logOwner = "owner"
	logErr   = "err"
)

// Runner runs work while it holds a named lease. Set the fields, then call
// Run.
type Runner struct {
	// Store keeps the lease; nil means the lease is always held (one
	// server owns its embedded store).
	Store lapse.LeaseStore
	// Name names the lease, the same on every server.
	Name string
	// Owner names this server, different on every server.
	Owner string
	// TTL is how long a lease lasts without renewal: how long another
	// server waits at most for a holder that died before it takes over.
	// Default [DefaultTTL].
	TTL time.Duration
	// Renew is how often the holder renews and a server without the lease
	// asks for it again; default TTL/3, and TTL/3 as well when it is not
	// below TTL/2, which would leave no time to retry a failed renewal.
	Renew time.Duration
	// Logger receives acquisitions and losses; nil means slog.Default().
	Logger *slog.Logger
	// OnChange, if set, is called with true when the lease is acquired
	// and with false when it is lost or released (for metrics).
	OnChange func(name string, held bool)

	held atomic.Bool
}

// Held reports whether this server holds the lease now.
func (r *Runner) Held() bool { return r.held.Load() }

func (r *Runner) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.Default().With("system", "lease")
	}
	return r.Logger
}

func (r *Runner) set(held bool) {
	r.held.Store(held)
	if r.OnChange != nil {
		r.OnChange(r.Name, held)
	}
}

// Run runs work while it holds the lease, until ctx ends, and then
// returns nil after work has returned and the lease is released. work gets
// a context that is cancelled when the lease is lost; it should return
// promptly then. If work returns while the lease is held, the lease is
// released and work is started again when the lease is next acquired.
func (r *Runner) Run(ctx context.Context, work func(ctx context.Context) error) error {
	if r.Name == "" || (r.Store != nil && r.Owner == "") {
		return errors.New("lease runner: no lease name or owner")
	}
	log := r.logger().With(logLease, r.Name)
	if r.Store == nil {
		r.set(true)
		defer r.set(false)
		for ctx.Err() == nil {
			if err := work(ctx); err != nil && ctx.Err() == nil {
				log.Error("singleton work stopped", logErr, err)
			}
			wait(ctx, r.renew())
		}
		return nil
	}
	for ctx.Err() == nil {
		until, ok, err := r.acquire(ctx)
		if err != nil && ctx.Err() == nil {
			log.Debug("acquire lease", logErr, err)
		}
		if !ok {
			wait(ctx, r.renew())
			continue
		}
		log.Info("lease acquired", logOwner, r.Owner, "ttl", r.ttl())
		r.set(true)
		lost := r.hold(ctx, until, work, log)
		r.set(false)
		if lost {
			wait(ctx, r.renew())
		}
	}
	return nil
}

func (r *Runner) ttl() time.Duration {
	if r.TTL <= 0 {
		return DefaultTTL
	}
	return r.TTL
}

func (r *Runner) renew() time.Duration {
	if r.Renew <= 0 || r.Renew >= r.ttl()/2 {
		return r.ttl() / 3
	}
	return r.Renew
}

// acquire asks for the lease once and returns until when this server may
// work under it: the lease's time, counted from before the request was
// sent, less a fifth for the work to stop.
func (r *Runner) acquire(ctx context.Context) (time.Time, bool, error) {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, r.renew())
	defer cancel()
	ok, err := r.Store.AcquireLease(cctx, r.Name, r.Owner, r.ttl())
	if err != nil {
		return time.Time{}, false, err
	}
	return start.Add(r.ttl() - r.ttl()/5), ok, nil
}

// renewal is the outcome of one renewal.
type renewal struct {
	until time.Time
	ok    bool
	err   error
}

// hold runs work until the lease is lost or ctx ends, and reports whether
// it was lost (rather than released at the end of ctx).
func (r *Runner) hold(ctx context.Context, until time.Time, work func(ctx context.Context) error, log *slog.Logger) bool {
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- work(wctx) }()
	deadline := time.NewTimer(time.Until(until))
	defer deadline.Stop()
	tick := time.NewTicker(r.renew())
	defer tick.Stop()
	// Renewals run beside the deadline, so that a hanging database cannot
	// keep work going past it.
	renewed := make(chan renewal, 1)
	renewing := false
	// end stops work and waits for it and for a renewal in flight.
	end := func(workDone bool) {
		stop()
		if !workDone {
			<-done
		}
		if renewing {
			<-renewed
		}
	}
	release := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := r.Store.ReleaseLease(rctx, r.Name, r.Owner); err != nil {
			log.Warn("release lease", logErr, err)
			return
		}
		log.Info("lease released", logOwner, r.Owner)
	}
	for {
		select {
		case <-ctx.Done():
			end(false)
			release()
			return false
		case err := <-done:
			end(true)
			if ctx.Err() != nil {
				release()
				return false
			}
			if err != nil {
				log.Error("singleton work stopped", logErr, err)
			}
			release()
			return true
		case <-deadline.C:
			end(false)
			log.Warn("lease lost; singleton work stopped", logOwner, r.Owner, "why", "not renewed in time")
			return true
		case <-tick.C:
			if !renewing {
				renewing = true
				go func() {
					u, ok, err := r.acquire(wctx)
					renewed <- renewal{u, ok, err}
				}()
			}
		case res := <-renewed:
			renewing = false
			switch {
			case res.err != nil:
				// Tried again at the next tick, until the deadline.
				log.Debug("renew lease", logErr, res.err)
			case !res.ok:
				end(false)
				log.Warn("lease lost; singleton work stopped", logOwner, r.Owner, "why", "held by another server")
				return true
			default:
				deadline.Reset(time.Until(res.until))
			}
		}
	}
}

// wait sleeps for d or until ctx ends.
func wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
