package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lapse-access/lapse"
)

// MonitorActor is the audit actor of alerts and of the revocations rules
// ask for.
const MonitorActor = "lapse-monitor"

// Bounds of the watcher's work.
const (
	// maxPendingRevocations bounds the grants waiting for a rule's
	// revocation; beyond it the oldest are dropped with a warning (their
	// alerts stay open).
	maxPendingRevocations = 10_000
	// activityScan is the most activity events of one grant the
	// two-countries rule reads.
	activityScan = 1000
	// revokeInterval is how often waiting revocations are tried again.
	revokeInterval = 5 * time.Second
)

// Watcher runs the anomaly rules. It looks at the audit events written
// through the store [Watcher.Wrap] returns, in their transaction, and
// raises alerts there: each alert is a row of the alerts table and an
// [lapse.EvAlertRaised] audit record, committed together with the events
// that raised it, or not at all. Alerts of rules set to revoke are revoked
// by Run, after the commit, through Revoke.
//
// Set the fields before the first use; the zero values of the tunables
// get defaults.
type Watcher struct {
	// Store is the store the wrapped store writes to, and what rules read.
	Store lapse.Store
	// Rules are the rules in force; nil means [DefaultRules].
	Rules Rules
	// History knows users' habits.
	History *History
	// Clock tells the time of ingested activity without one; nil means
	// [lapse.SystemClock].
	Clock lapse.Clock
	// Revoke ends the grant of request id for reason, as [MonitorActor];
	// nil disables revoking rules (their alerts are still raised).
	Revoke func(ctx context.Context, id, reason string) error
	Logger *slog.Logger

	mu sync.Mutex
	// revoke holds the requests rules asked to revoke that are not ended
	// yet, with the reason.
	revoke map[string]string
	wake   chan struct{}
}

func (w *Watcher) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.Default().With(logSystem, "monitor")
	}
	return w.Logger
}

func (w *Watcher) rules() Rules {
	if w.Rules == nil {
		return DefaultRules()
	}
	return w.Rules
}

func (w *Watcher) now() time.Time {
	if w.Clock == nil {
		return time.Now()
	}
	return w.Clock.Now()
}

// Wrap returns s with the watcher looking at every audit event appended
// through it.
func (w *Watcher) Wrap(s lapse.Store) lapse.Store { return &watchedStore{Store: s, w: w} }

type watchedStore struct {
	lapse.Store
	w *Watcher
}

func (s *watchedStore) Tx(ctx context.Context, fn func(ctx context.Context, tx lapse.Tx) error) error {
	return s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		return fn(ctx, &watchedTx{Tx: tx, w: s.w, log: s.Store})
	})
}

// watchedTx runs the rules on the events appended through it.
type watchedTx struct {
	lapse.Tx
	w *Watcher
	// log reads the audit log as committed, outside the transaction.
	log lapse.Reader
	// appended are the events appended through the transaction so far, in
	// order, without the alerts raised for them.
	appended []lapse.AuditEvent
}

// AppendAudit appends evs and then the alerts they raise.
func (t *watchedTx) AppendAudit(ctx context.Context, evs ...lapse.AuditEvent) error {
	if err := t.Tx.AppendAudit(ctx, evs...); err != nil {
		return err
	}
	from := len(t.appended)
	t.appended = append(t.appended, evs...)
	return t.w.inspect(ctx, t.Tx, t.log, t.appended, from)
}

// inspect runs the rules on batch[from:] within tx and raises what they
// find. The alerts of each event are stored before the next is looked at,
// so that an alert raised for one is open for the rules of the next.
func (w *Watcher) inspect(ctx context.Context, tx lapse.Tx, log lapse.Reader, batch []lapse.AuditEvent, from int) error {
	for i := from; i < len(batch); i++ {
		alerts := w.Check(ctx, tx, log, batch, i)
		for j := range alerts {
			if err := tx.CreateAlert(ctx, &alerts[j]); err != nil {
				return fmt.Errorf("raise alert %s: %w", alerts[j].Rule, err)
			}
			if err := tx.AppendAudit(ctx, lapse.AlertEvent(alerts[j], MonitorActor)); err != nil {
				return fmt.Errorf("raise alert %s: %w", alerts[j].Rule, err)
			}
		}
	}
	return nil
}

// Check returns the alerts that batch[i] raises, not yet stored. batch are
// the events a transaction has appended so far, in order; batch[:i] came
// before the event. r reads within the transaction: the event's request
// and the open alerts, which the transaction may have written. log reads
// the audit log as committed, which holds none of batch: the rules add the
// earlier events of batch to what log returns, so they judge the same
// events whether or not the store has written the transaction's records
// yet. Rules that cannot read what they need are skipped with a warning:
// monitoring never fails the change it watches.
func (w *Watcher) Check(ctx context.Context, r, log lapse.Reader, batch []lapse.AuditEvent, i int) []lapse.Alert {
	ev := batch[i]
	rules := w.rules()
	var out []lapse.Alert
	raise := func(name string, rule Rule, msg string, details map[string]string) {
		out = append(out, lapse.Alert{Rule: name, Severity: rule.Severity, User: ev.User, Resource: ev.Resource, Role: ev.Role,
			RequestID: ev.RequestID, Message: msg, Details: details, Revoke: rule.Revoke && ev.RequestID != "", RaisedAt: ev.Time})
	}
	switch ev.Type {
	case lapse.EvRequested:
		w.checkRequest(ctx, r, ev, rules, raise)
		if rule, ok := rules.on(RuleRequestBurst); ok {
			w.checkBurst(ctx, r, log, batch[:i+1], RuleRequestBurst, rule, []string{lapse.EvRequested}, "requests", raise)
		}
	case lapse.EvRefused, lapse.EvDenied:
		if rule, ok := rules.on(RuleDenialBurst); ok {
			w.checkBurst(ctx, r, log, batch[:i+1], RuleDenialBurst, rule, []string{lapse.EvRefused, lapse.EvDenied}, "refused or denied requests", raise)
		}
	case lapse.EvActivityOutside:
		if rule, ok := rules.on(RuleOutsideGrant); ok {
			var a lapse.Activity
			_ = json.Unmarshal(ev.Data, &a)
			raise(RuleOutsideGrant, rule, fmt.Sprintf("%s activity by %s on %s (%s) outside any grant", a.Kind, ev.User, ev.Resource, ev.Role),
				map[string]string{"kind": a.Kind, "at": a.At.UTC().Format(time.RFC3339), "client_addr": a.Details["client_addr"]})
		}
	case lapse.EvActivity:
		if rule, ok := rules.on(RuleTwoCountries); ok {
			w.checkTwoCountries(ctx, r, log, ev, batch[:i], rule, raise)
		}
	}
	return out
}

type raiseFunc func(name string, rule Rule, msg string, details map[string]string)

// checkRequest runs the habit rules on a new request.
func (w *Watcher) checkRequest(ctx context.Context, r lapse.Reader, ev lapse.AuditEvent, rules Rules, raise raiseFunc) {
	if w.History == nil {
		return
	}
	req, err := r.GetRequest(ctx, ev.RequestID)
	if err != nil {
		w.logger().Warn("read request for anomaly rules", "request", ev.RequestID, logErr, err)
		return
	}
	h := w.History.Of(ctx, ev.User, ev.Time)
	if rule, ok := rules.on(RuleUnusualHour); ok && len(h.Hours) > 0 {
		if hr := ev.Time.UTC().Hour(); !slices.Contains(h.Hours, hr) {
			raise(RuleUnusualHour, rule, fmt.Sprintf("%s asked at %02d:00 UTC, outside their usual hours", ev.User, hr),
				map[string]string{"hour": strconv.Itoa(hr), "usual_hours": fmt.Sprint(sorted(h.Hours))})
		}
	}
	if rule, ok := rules.on(RuleNewCountry); ok && len(h.Countries) > 0 {
		if c := w.History.country(req.ClientIP); c != "" && !slices.Contains(h.Countries, c) {
			raise(RuleNewCountry, rule, fmt.Sprintf("%s asked from %s, a country they have not asked from before", ev.User, c),
				map[string]string{"country": c, "client_ip": req.ClientIP, "known_countries": fmt.Sprint(sorted(h.Countries))})
		}
	}
	if rule, ok := rules.on(RuleNewDevice); ok && len(h.Devices) > 0 && req.Device != "" && !slices.Contains(h.Devices, req.Device) {
		raise(RuleNewDevice, rule, fmt.Sprintf("%s asked from device %s, which they have not used before", ev.User, req.Device),
			map[string]string{"device": req.Device})
	}
}

// checkBurst raises name when the last event of upto, ev, makes
// rule.Count events of types by one user within rule.Window, unless an
// alert of the rule about the user is still open from within the window.
// It counts the committed events that log returns and the events of upto,
// ev included, which are the transaction's own.
func (w *Watcher) checkBurst(ctx context.Context, r, log lapse.Reader, upto []lapse.AuditEvent, name string, rule Rule, types []string, what string, raise raiseFunc) {
	ev := upto[len(upto)-1]
	if ev.User == "" {
		return
	}
	since := ev.Time.Add(-rule.Window)
	n := 0
	for _, e := range upto {
		if e.User == ev.User && slices.Contains(types, e.Type) && !e.Time.Before(since) && !e.Time.After(ev.Time) {
			n++
		}
	}
	for _, typ := range types {
		// Until is exclusive: up to and including ev's time.
		evs, err := log.ListAudit(ctx, lapse.AuditFilter{User: ev.User, Type: typ, Since: since, Until: ev.Time.Add(time.Nanosecond), Limit: rule.Count})
		if err != nil {
			w.logger().Warn("count events for anomaly rules", "rule", name, logErr, err)
			return
		}
		n += len(evs)
	}
	if n < rule.Count {
		return
	}
	open, err := r.ListAlerts(ctx, lapse.AlertFilter{User: ev.User, State: lapse.AlertOpen, Limit: 1000})
	if err != nil {
		w.logger().Warn("read open alerts", "rule", name, logErr, err)
		return
	}
	if slices.ContainsFunc(open, func(a lapse.Alert) bool { return a.Rule == name && !a.RaisedAt.Before(since) }) {
		return
	}
	raise(name, rule, fmt.Sprintf("%s: %d %s within %s", ev.User, n, what, rule.Window),
		map[string]string{"count": strconv.Itoa(n), "window": rule.Window.String()})
}

// checkTwoCountries raises an alert when a grant's activity comes from a
// country other than that of its earlier activity: the committed activity
// that log returns, and earlier, the activity the transaction appended
// before ev.
func (w *Watcher) checkTwoCountries(ctx context.Context, r, log lapse.Reader, ev lapse.AuditEvent, earlier []lapse.AuditEvent, rule Rule, raise raiseFunc) {
	if w.History == nil || ev.RequestID == "" {
		return
	}
	country := func(e lapse.AuditEvent) string {
		var a lapse.Activity
		if json.Unmarshal(e.Data, &a) != nil {
			return ""
		}
		return w.History.country(a.Details["client_addr"])
	}
	c := country(ev)
	if c == "" {
		return
	}
	evs, err := log.ListAudit(ctx, lapse.AuditFilter{RequestID: ev.RequestID, Type: lapse.EvActivity, Limit: activityScan})
	if err != nil {
		w.logger().Warn("read grant activity", "request", ev.RequestID, logErr, err)
		return
	}
	for _, e := range slices.Concat(evs, earlier) {
		if e.Type != lapse.EvActivity || e.RequestID != ev.RequestID {
			continue
		}
		if other := country(e); other != "" && other != c {
			open, err := r.ListAlerts(ctx, lapse.AlertFilter{User: ev.User, State: lapse.AlertOpen, Limit: 1000})
			if err == nil && slices.ContainsFunc(open, func(a lapse.Alert) bool {
				return a.Rule == RuleTwoCountries && a.RequestID == ev.RequestID && a.Details["country"] == c
			}) {
				return
			}
			raise(RuleTwoCountries, rule, fmt.Sprintf("grant %s used from %s and %s", ev.RequestID, other, c),
				map[string]string{"country": c, "earlier_country": other})
			return
		}
	}
}

func sorted[T int | string](s []T) []T { return slices.Sorted(slices.Values(s)) }

// Observe looks at committed events for alerts whose rule revokes; give
// it to the store's OnCommit. It never blocks.
func (w *Watcher) Observe(evs []lapse.AuditEvent) {
	queued := false
	for _, ev := range evs {
		if ev.Type != lapse.EvAlertRaised || ev.RequestID == "" {
			continue
		}
		var a lapse.Alert
		if json.Unmarshal(ev.Data, &a) != nil || !a.Revoke {
			continue
		}
		w.queue(ev.RequestID, a.Rule)
		queued = true
	}
	if queued {
		w.poke()
	}
}

func (w *Watcher) queue(id, rule string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.revoke == nil {
		w.revoke = map[string]string{}
	}
	if _, ok := w.revoke[id]; !ok && len(w.revoke) >= maxPendingRevocations {
		w.logger().Warn("too many grants waiting for a rule's revocation; dropping one", "request", id)
		return
	}
	w.revoke[id] = "anomaly rule " + rule
}

func (w *Watcher) poke() {
	w.mu.Lock()
	if w.wake == nil {
		w.wake = make(chan struct{}, 1)
	}
	c := w.wake
	w.mu.Unlock()
	select {
	case c <- struct{}{}:
	default:
	}
}

// Run revokes the grants of alerts whose rule revokes, until ctx ends. At
// start it takes them from the open alerts in the store, so a restart
// forgets none. A request that is not active yet (pending approval, or
// being provisioned) is revoked once it is; one that ended is forgotten.
func (w *Watcher) Run(ctx context.Context) error {
	open, err := w.Store.ListAlerts(ctx, lapse.AlertFilter{State: lapse.AlertOpen, Limit: maxPendingRevocations})
	if err != nil {
		return fmt.Errorf("monitor: read open alerts: %w", err)
	}
	for _, a := range open {
		if a.Revoke && a.RequestID != "" {
			w.queue(a.RequestID, a.Rule)
		}
	}
	w.mu.Lock()
	if w.wake == nil {
		w.wake = make(chan struct{}, 1)
	}
	wake := w.wake
	w.mu.Unlock()
	t := time.NewTicker(revokeInterval)
	defer t.Stop()
	for {
		w.RevokePending(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-t.C:
		}
	}
}

// RevokePending tries once to revoke every grant rules asked to revoke.
func (w *Watcher) RevokePending(ctx context.Context) {
	w.mu.Lock()
	todo := maps.Clone(w.revoke)
	w.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(todo)) {
		if ctx.Err() != nil {
			return
		}
		done := w.revokeOne(ctx, id, todo[id])
		if done {
			w.mu.Lock()
			delete(w.revoke, id)
			w.mu.Unlock()
		}
	}
}

// revokeOne revokes request id if it is active or approved; it reports
// whether nothing is left to do for it.
func (w *Watcher) revokeOne(ctx context.Context, id, reason string) bool {
	if w.Revoke == nil {
		return true
	}
	r, err := w.Store.GetRequest(ctx, id)
	if errors.Is(err, lapse.ErrNotFound) {
		return true
	}
	if err != nil {
		w.logger().Warn("read request to revoke", "request", id, logErr, err)
		return false
	}
	switch r.State {
	case lapse.StateActive, lapse.StateApproved:
	case lapse.StatePending:
		return false
	default:
		return true
	}
	if r.State == lapse.StateApproved && r.Owner != "" {
		return false // being provisioned: revoke once active
	}
	err = w.Revoke(ctx, id, reason)
	switch {
	case err == nil:
		w.logger().Info("grant revoked by anomaly rule", "request", id, "reason", reason)
		return true
	case errors.Is(err, lapse.ErrConflict):
		return false // changed meanwhile; look again
	default:
		w.logger().Error("revoke grant for anomaly rule", "request", id, logErr, err)
		return false
	}
}

// Alerts returns the alerts matching f.
func (w *Watcher) Alerts(ctx context.Context, f lapse.AlertFilter) ([]lapse.Alert, error) {
	if f.State != "" && f.State != lapse.AlertOpen && f.State != lapse.AlertAcknowledged {
		return nil, lapse.Invalidf("state: want open or acknowledged, got %q", f.State)
	}
	if f.Severity != "" && !lapse.ValidSeverity(f.Severity) {
		return nil, lapse.Invalidf("severity: want one of %v, got %q", lapse.Severities, f.Severity)
	}
	return w.Store.ListAlerts(ctx, f)
}

// Ack acknowledges the alert with id on behalf of by, with an audit
// record in the same transaction.
func (w *Watcher) Ack(ctx context.Context, id int64, by string) error {
	_, err := w.AckAlert(ctx, id, by)
	return err
}

// AckAlert acknowledges the alert with id on behalf of by and returns it.
func (w *Watcher) AckAlert(ctx context.Context, id int64, by string) (lapse.Alert, error) {
	var out lapse.Alert
	err := w.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		a, err := tx.AckAlert(ctx, id, by, w.now())
		if err != nil {
			return err
		}
		ev := lapse.NewAuditEvent(lapse.EvAlertAcknowledged, by, "", lapse.Request{ID: a.RequestID, User: a.User, Resource: a.Resource, Role: a.Role},
			map[string]any{"alert_id": a.ID, "rule": a.Rule, "severity": a.Severity}, a.AckedAt)
		ev.To = ""
		if err := tx.AppendAudit(ctx, ev); err != nil {
			return err
		}
		out = a
		return nil
	})
	return out, err
}
