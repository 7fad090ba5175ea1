package monitor

import (
	"context"
	"net/netip"
	"regexp"
	"time"

	"github.com/lapse-access/lapse"
)

// Limits of an activity report.
const (
	maxDetails      = 32
	maxDetailBytes  = 1024
	maxFieldBytes   = 256
	maxFutureSkew   = 5 * time.Minute
	maxActivityAge  = 30 * 24 * time.Hour
	grantCandidates = 500
)

var kindRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]{0,31}$`)

// ActivityReport is what an integration reports was done: by whom, on
// which resource and role (or under which request), what, when and from
// where.
type ActivityReport struct {
	User      string `json:"user"`
	Resource  string `json:"resource"`
	Role      string `json:"role"`
	RequestID string `json:"request_id"`
	// Kind says what it was, e.g. "login", "query", "session".
	Kind string `json:"kind"`
	// At is when it happened (RFC 3339); default now.
	At string `json:"at"`
	// SourceIP is the address it came from.
	SourceIP string `json:"source_ip"`
	// ID identifies the activity at the integration, if it has an id.
	ID      string            `json:"id"`
	Details map[string]string `json:"details"`
}

// IngestResult says what became of a report.
type IngestResult struct {
	// RequestID is the grant the activity happened under; empty when no
	// grant covered it.
	RequestID string `json:"request_id,omitempty"`
	// Outside reports activity that no grant covered, recorded as an
	// anomaly.
	Outside bool `json:"outside_grant"`
	// Seq is the sequence number of the audit record.
	Seq int64 `json:"seq"`
}

// Ingest records activity reported by integration. The activity is tied to
// the grant it happened under — the request named, or the grant of the
// user, resource and role whose window held its time — and recorded as a
// [lapse.EvActivity] audit record of that request; activity no grant
// covered is recorded as [lapse.EvActivityOutside]. The rules run on it in
// the same transaction. Bad input is an error matching [lapse.ErrInvalid]
// and records nothing.
func (w *Watcher) Ingest(ctx context.Context, integration string, in ActivityReport) (IngestResult, error) {
	now := w.now()
	a, err := validate(in, now)
	if err != nil {
		return IngestResult{}, err
	}
	a.Details["source"] = integration
	var res IngestResult
	err = w.Wrap(w.Store).Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		r, found, err := grantAt(ctx, tx, in, a.At)
		if err != nil {
			return err
		}
		typ := lapse.EvActivity
		if !found {
			typ = lapse.EvActivityOutside
		}
		if a.Key == "" {
			a.Key = integration + " " + a.Kind + " at " + a.At.Format(time.RFC3339Nano)
		}
		ev := lapse.NewAuditEvent(typ, integration, "", r, a, now)
		ev.From, ev.To = "", ""
		if err := tx.AppendAudit(ctx, ev); err != nil {
			return err
		}
		res = IngestResult{RequestID: r.ID, Outside: !found}
		tx.AfterCommit(func(stored []lapse.AuditEvent) {
			// The record of the activity is the first of the transaction;
			// the alerts it raised follow it.
			if len(stored) > 0 {
				res.Seq = stored[0].Seq
			}
		})
		return nil
	})
	if err != nil {
		return IngestResult{}, err
	}
	return res, nil
}

// validate checks a report and returns its activity.
func validate(in ActivityReport, now time.Time) (lapse.Activity, error) {
	a := lapse.Activity{Key: in.ID, Kind: in.Kind, Details: map[string]string{}}
	if in.RequestID == "" && (in.User == "" || in.Resource == "" || in.Role == "") {
		return a, lapse.Invalidf("name the grant: request_id, or user, resource and role")
	}
	for name, v := range map[string]string{"user": in.User, "resource": in.Resource, "role": in.Role, "request_id": in.RequestID, "id": in.ID} {
		if len(v) > maxFieldBytes {
			return a, lapse.Invalidf("%s is %d bytes long; the limit is %d", name, len(v), maxFieldBytes)
		}
	}
	if !kindRE.MatchString(in.Kind) {
		return a, lapse.Invalidf("kind %q: want a short lower-case word such as login, query or session", in.Kind)
	}
	a.At = now.UTC()
	if in.At != "" {
		t, err := time.Parse(time.RFC3339Nano, in.At)
		if err != nil {
			return a, lapse.Invalidf("at: want an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", in.At)
		}
		if t.After(now.Add(maxFutureSkew)) {
			return a, lapse.Invalidf("at %s is in the future", in.At)
		}
		if t.Before(now.Add(-maxActivityAge)) {
			return a, lapse.Invalidf("at %s is more than %s ago", in.At, maxActivityAge)
		}
		a.At = t.UTC()
	}
	if len(in.Details) > maxDetails {
		return a, lapse.Invalidf("at most %d details, got %d", maxDetails, len(in.Details))
	}
	for k, v := range in.Details {
		if k == "" || len(k) > 64 || len(v) > maxDetailBytes {
			return a, lapse.Invalidf("detail %q: keys are 1 to 64 bytes, values at most %d", k, maxDetailBytes)
		}
		if k == "client_addr" || k == "source" {
			return a, lapse.Invalidf("detail %q is set by Lapse: send source_ip", k)
		}
		a.Details[k] = v
	}
	if in.SourceIP != "" {
		ip, err := netip.ParseAddr(in.SourceIP)
		if err != nil {
			return a, lapse.Invalidf("source_ip: %q is not an IP address", in.SourceIP)
		}
		a.Details["client_addr"] = ip.Unmap().String()
	}
	return a, nil
}

// grantAt returns the request whose grant covered at: the request named,
// if its window held at, or else the latest grant of the user, resource
// and role whose window held at. A request named that does not exist, or
// that is not the user's, resource's or role's named with it, is bad
// input.
func grantAt(ctx context.Context, r lapse.Reader, in ActivityReport, at time.Time) (lapse.Request, bool, error) {
	if in.RequestID != "" {
		q, err := r.GetRequest(ctx, in.RequestID)
		if err != nil {
			return lapse.Request{}, false, lapse.Invalidf("request_id: %v", err)
		}
		for name, pair := range map[string][2]string{"user": {in.User, q.User}, "resource": {in.Resource, q.Resource}, "role": {in.Role, q.Role}} {
			if pair[0] != "" && pair[0] != pair[1] {
				return lapse.Request{}, false, lapse.Invalidf("%s %q does not match request %s (%s)", name, pair[0], q.ID, pair[1])
			}
		}
		if covers(q, at) {
			return q, true, nil
		}
		in.User, in.Resource, in.Role = q.User, q.Resource, q.Role
	}
	rs, err := r.ListRequests(ctx, lapse.RequestFilter{User: in.User, Resource: in.Resource, Limit: grantCandidates})
	if err != nil {
		return lapse.Request{}, false, err
	}
	for _, q := range rs {
		if q.Role == in.Role && covers(q, at) {
			return q, true, nil
		}
	}
	return lapse.Request{ID: in.RequestID, User: in.User, Resource: in.Resource, Role: in.Role}, false, nil
}

// covers reports whether r's grant window held at: it was activated at or
// before at, and neither expired nor ended by then. Activity while a
// revocation is not confirmed yet happened under the grant's access, so it
// counts as covered.
func covers(r lapse.Request, at time.Time) bool {
	if r.ActivatedAt.IsZero() || at.Before(r.ActivatedAt) {
		return false
	}
	end := r.ExpiresAt
	if !r.EndedAt.IsZero() && (end.IsZero() || r.EndedAt.Before(end)) {
		end = r.EndedAt
	}
	return end.IsZero() || at.Before(end)
}
