package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/lapse-access/lapse"
)

// Defaults for the zero values of [Sampler]'s tunables.
const (
	DefaultInterval    = 15 * time.Second
	DefaultCallTimeout = 10 * time.Second
	DefaultConcurrency = 4
)

// MaxGrants is the most active grants one pass samples; when there are
// more, the newest are sampled and a warning is logged.
const MaxGrants = 10_000

// Bounds of the memory of recorded activity.
const (
	// forgetAfter is how long a key is kept after the target last showed
	// it.
	forgetAfter = time.Hour
	// maxKeys is the most keys kept per grant.
	maxKeys = 4096
	// seedPage is how many audit events one read fetches when the memory
	// of a grant is rebuilt.
	seedPage = 1000
)

// actor is the audit actor of activity events.
const actor = "lapse"

// Log attribute keys.
const (
	logSystem   = "system"
	logGrant    = "grant"
	logGrants   = "grants"
	logResource = "resource"
	logFailed   = "failed"
	logSeq      = "seq"
	logErr      = "err"
)

// Target resolves the connector of a request's resource and the role's
// connector settings, like the expiry scheduler's.
type Target func(resource, role string) (lapse.Connector, any, error)

// Sampler records the activity of active grants in the audit log. Set the
// exported fields before the first SampleOnce or Run; the zero values of
// the tunables get defaults.
type Sampler struct {
	// Store lists the active grants and receives the activity events.
	Store lapse.Store
	// Target resolves a grant's connector. Grants whose connector does
	// not implement [lapse.ActivitySampler], or that it cannot resolve,
	// are not sampled.
	Target Target
	// Clock is the only source of time; nil means [lapse.SystemClock].
	Clock lapse.Clock
	// Logger receives the sampler's logs; nil means slog.Default() with
	// system=monitor.
	Logger *slog.Logger
	// Interval is the time from the end of one pass to the start of the
	// next in Run; default [DefaultInterval].
	Interval time.Duration
	// CallTimeout bounds each SampleActivity call; default
	// [DefaultCallTimeout].
	CallTimeout time.Duration
	// Concurrency bounds the SampleActivity calls in flight; default
	// [DefaultConcurrency].
	Concurrency int

	once sync.Once
	// pass lets one pass run at a time; it guards seen.
	pass sync.Mutex
	// seen holds, by grant id, the keys of the grant's activity that are
	// recorded, with the last time the target showed each.
	seen map[string]keys
}

// keys maps activity keys to the last time the target showed them.
type keys map[string]time.Time

func (s *Sampler) init() {
	s.once.Do(func() {
		if s.Clock == nil {
			s.Clock = lapse.SystemClock{}
		}
		if s.Logger == nil {
			s.Logger = slog.Default().With(logSystem, "monitor")
		}
		if s.Interval <= 0 {
			s.Interval = DefaultInterval
		}
		if s.CallTimeout <= 0 {
			s.CallTimeout = DefaultCallTimeout
		}
		if s.Concurrency <= 0 {
			s.Concurrency = DefaultConcurrency
		}
		s.seen = map[string]keys{}
	})
}

// Run samples at once and then every Interval until ctx is cancelled, and
// returns nil then, after the pass in progress has stopped. Failures are
// logged; the next pass tries again.
func (s *Sampler) Run(ctx context.Context) error {
	s.init()
	// Another server may have sampled since this one last ran: what it
	// recorded is read again from the audit log.
	s.pass.Lock()
	clear(s.seen)
	s.pass.Unlock()
	for ctx.Err() == nil {
		// SampleOnce logs what failed.
		_, _ = s.SampleOnce(ctx)
		t := s.Clock.NewTimer(s.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C():
		}
	}
	return nil
}

// job is one grant to sample.
type job struct {
	r       lapse.Request
	grant   lapse.Grant
	sampler lapse.ActivitySampler
	// seed says the memory of the grant is to be rebuilt from the audit
	// log first.
	seed bool
}

// result is what sampling one grant gave.
type result struct {
	// seeded is the rebuilt memory, if the job asked for it.
	seeded keys
	acts   []lapse.Activity
	err    error
}

// SampleOnce samples every active grant once, records the activity not
// recorded before in one transaction, and returns how many events it
// recorded. A grant that cannot be sampled is skipped and tried again in
// the next pass; the error then says how many failed, and the first
// failure. The failures are logged as well.
func (s *Sampler) SampleOnce(ctx context.Context) (int, error) {
	s.init()
	s.pass.Lock()
	defer s.pass.Unlock()

	start := s.Clock.Now()
	grants, err := s.Store.ListRequests(ctx, lapse.RequestFilter{States: []lapse.State{lapse.StateActive}, Limit: MaxGrants})
	if err != nil {
		err = fmt.Errorf("list active grants: %w", err)
		if ctx.Err() == nil {
			s.Logger.Error("list active grants", logErr, err)
		}
		return 0, err
	}
	if len(grants) >= MaxGrants {
		s.Logger.Warn("active grants over the sampling limit; the oldest are not sampled", logGrants, len(grants))
	}
	active := make(map[string]bool, len(grants))
	jobs := make([]job, 0, len(grants))
	for _, r := range grants {
		active[r.ID] = true
		c, settings, err := s.Target(r.Resource, r.Role)
		if err != nil {
			s.Logger.Debug("no connector for grant", logGrant, r.ID, logResource, r.Resource, logErr, err)
			continue
		}
		as, ok := c.(lapse.ActivitySampler)
		if !ok {
			continue
		}
		_, known := s.seen[r.ID]
		jobs = append(jobs, job{r: r, sampler: as, seed: !known, grant: r.Grant(r.ExpiresAt, settings)})
	}
	// Grants that are no longer active do not come back.
	for id := range s.seen {
		if !active[id] {
			delete(s.seen, id)
		}
	}

	results := s.sampleAll(ctx, jobs, start)
	now := s.Clock.Now()
	var (
		evs      []lapse.AuditEvent
		fresh    = map[string][]string{} // grant id → keys of evs
		sampled  []string                // grants sampled successfully
		failed   int
		firstErr error
	)
	for i, res := range results {
		j := jobs[i]
		if res.seeded != nil {
			s.seen[j.r.ID] = res.seeded
		}
		if res.err != nil {
			if failed == 0 {
				firstErr = res.err
			}
			failed++
			continue
		}
		known := s.seen[j.r.ID]
		sampled = append(sampled, j.r.ID)
		for _, a := range res.acts {
			if _, ok := known[a.Key]; ok {
				known[a.Key] = now
				continue
			}
			known[a.Key] = time.Time{} // not recorded yet; see below
			evs = append(evs, activityEvent(j.r, a, now))
			fresh[j.r.ID] = append(fresh[j.r.ID], a.Key)
		}
	}
	var errs []error
	if failed > 0 {
		err := fmt.Errorf("sample activity of %d of %d grants: first: %w", failed, len(jobs), firstErr)
		if ctx.Err() == nil {
			s.Logger.Warn("sample activity", logFailed, failed, logGrants, len(jobs), logErr, firstErr)
		}
		errs = append(errs, err)
	}

	recorded := 0
	if len(evs) > 0 {
		// The sampling is done: record it even while shutting down.
		err := s.Store.Tx(context.WithoutCancel(ctx), func(ctx context.Context, tx lapse.Tx) error {
			return tx.AppendAudit(ctx, evs...)
		})
		if err != nil {
			err = fmt.Errorf("record activity: %w", err)
			s.Logger.Error("record activity", logErr, err)
			errs = append(errs, err)
		} else {
			recorded = len(evs)
		}
	}
	for _, id := range sampled {
		known := s.seen[id]
		for _, k := range fresh[id] {
			if recorded > 0 {
				known[k] = now
			} else {
				// Not recorded: the next pass tries again.
				delete(known, k)
			}
		}
		known.prune(now)
	}
	return recorded, errors.Join(errs...)
}

// sampleAll runs the jobs, at most Concurrency at a time, and returns
// their results in order. seedAt is the time given to rebuilt keys.
func (s *Sampler) sampleAll(ctx context.Context, jobs []job, seedAt time.Time) []result {
	results := make([]result, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(s.Concurrency, len(jobs)) {
		wg.Go(func() {
			for i := range next {
				results[i] = s.sample(ctx, jobs[i], seedAt)
			}
		})
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	return results
}

// sample samples one grant, rebuilding its memory first if the job asks.
func (s *Sampler) sample(ctx context.Context, j job, seedAt time.Time) result {
	var res result
	if err := ctx.Err(); err != nil {
		res.err = err
		return res
	}
	if j.seed {
		res.seeded, res.err = s.recorded(ctx, j.r.ID, seedAt)
		if res.err != nil {
			return res
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.CallTimeout)
	defer cancel()
	res.acts, res.err = j.sampler.SampleActivity(ctx, j.grant)
	if res.err != nil {
		res.err = fmt.Errorf("sample activity of grant %s on %s: %w", j.r.ID, j.r.Resource, res.err)
	}
	return res
}

// recorded returns the keys of the activity recorded for a grant in the
// audit log, each with time at.
func (s *Sampler) recorded(ctx context.Context, id string, at time.Time) (keys, error) {
	out := keys{}
	var after int64
	for {
		evs, err := s.Store.ListAudit(ctx, lapse.AuditFilter{RequestID: id, Type: lapse.EvActivity, AfterSeq: after, Limit: seedPage})
		if err != nil {
			return nil, fmt.Errorf("read recorded activity of grant %s: %w", id, err)
		}
		for _, ev := range evs {
			after = ev.Seq
			var a lapse.Activity
			if err := json.Unmarshal(ev.Data, &a); err != nil {
				s.Logger.Warn("unreadable activity event", logGrant, id, logSeq, ev.Seq, logErr, err)
				continue
			}
			out[a.Key] = at
		}
		if len(evs) < seedPage {
			return out, nil
		}
	}
}

// activityEvent returns the audit event that records a of r's grant.
func activityEvent(r lapse.Request, a lapse.Activity, now time.Time) lapse.AuditEvent {
	ev := lapse.NewAuditEvent(lapse.EvActivity, actor, "", r, a, now)
	// Activity changes no request's state.
	ev.To = ""
	return ev
}

// prune forgets the keys that the target has not shown for forgetAfter,
// and then the least recently shown beyond maxKeys.
func (k keys) prune(now time.Time) {
	cutoff := now.Add(-forgetAfter)
	for key, at := range k {
		if at.Before(cutoff) {
			delete(k, key)
		}
	}
	over := len(k) - maxKeys
	if over <= 0 {
		return
	}
	byAge := slices.SortedFunc(maps.Keys(k), func(a, b string) int { return k[a].Compare(k[b]) })
	for _, key := range byAge[:over] {
		delete(k, key)
	}
}
