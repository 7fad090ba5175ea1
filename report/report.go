// Package report answers auditors' questions about a period from the
// store: who had access to what, when, for how long, approved by whom and
// why; which grants were never used; which requests were denied and why.
package report

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lapse-access/lapse"
)

// Report is the access report of a period.
type Report struct {
	Since time.Time `json:"since"`
	Until time.Time `json:"until"`
	// Grants are the grants active at some time in the period, by
	// activation.
	Grants []Grant `json:"grants"`
	// Unused are the request ids of grants with no activity record.
	Unused []string `json:"unused"`
	// Denied are the requests and extensions denied in the period.
	Denied     []Denial  `json:"denied"`
	ByResource []Summary `json:"by_resource"`
	ByUser     []Summary `json:"by_user"`
}

// Grant is one grant of access.
type Grant struct {
	RequestID   string     `json:"request_id"`
	User        string     `json:"user"`
	Resource    string     `json:"resource"`
	Role        string     `json:"role"`
	Reason      string     `json:"reason"`
	Ticket      string     `json:"ticket,omitempty"`
	ActivatedAt time.Time  `json:"activated_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`
	// Held is how long the access was held: until it ended, or until the
	// end of the period for access still held.
	Held        string  `json:"held"`
	HeldSeconds float64 `json:"held_seconds"`
	EndReason   string  `json:"end_reason,omitempty"`
	EndedBy     string  `json:"ended_by,omitempty"`
	// ApprovedBy are the human approvers; none means policy approved it.
	ApprovedBy []string `json:"approved_by"`
	Auto       bool     `json:"auto_approved"`
	// Activity is how many activity records the grant has.
	Activity int  `json:"activity"`
	Used     bool `json:"used"`
}

// Denial is a request or extension that was denied: by an approver
// (Kind "denied", "extension_denied") or by policy ("refused",
// "extension_refused").
type Denial struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"`
	RequestID string    `json:"request_id,omitempty"`
	User      string    `json:"user"`
	Resource  string    `json:"resource"`
	Role      string    `json:"role"`
	By        string    `json:"by"`
	Reason    string    `json:"reason"`
	Policies  []string  `json:"policies,omitempty"`
}

// Summary adds up one resource's or one user's access.
type Summary struct {
	Name   string `json:"name"`
	Grants int    `json:"grants"`
	// Others are the users (for a resource) or resources (for a user).
	Others      []string `json:"others"`
	HeldSeconds float64  `json:"held_seconds"`
	Unused      int      `json:"unused"`
	Denied      int      `json:"denied"`
}

// Reader is what a report reads.
type Reader interface {
	GetRequest(ctx context.Context, id string) (lapse.Request, error)
	ListRequests(ctx context.Context, f lapse.RequestFilter) ([]lapse.Request, error)
	ListAudit(ctx context.Context, f lapse.AuditFilter) ([]lapse.AuditEvent, error)
}

// pageSize is how many audit records one read returns.
const pageSize = 5000

// maxActivity bounds the activity records counted per grant.
const maxActivity = 100000

var denialKinds = map[string]string{
	lapse.EvDenied:           "denied",
	lapse.EvExtensionDenied:  "extension_denied",
	lapse.EvRefused:          "refused",
	lapse.EvExtensionRefused: "extension_refused",
}

// Build reads the period [since, until) from s.
func Build(ctx context.Context, s Reader, since, until time.Time) (Report, error) {
	rep := Report{Since: since.UTC(), Until: until.UTC(), Grants: []Grant{}, Unused: []string{}, Denied: []Denial{}}
	candidates := map[string]bool{}
	f := lapse.AuditFilter{Since: since, Until: until, Limit: pageSize}
	for {
		page, err := s.ListAudit(ctx, f)
		if err != nil {
			return Report{}, fmt.Errorf("report: %w", err)
		}
		for _, ev := range page {
			if ev.RequestID != "" {
				candidates[ev.RequestID] = true
			}
			if kind, ok := denialKinds[ev.Type]; ok {
				rep.Denied = append(rep.Denied, denial(kind, ev))
			}
		}
		if len(page) < f.Limit {
			break
		}
		f.AfterSeq = page[len(page)-1].Seq
	}
	// Grants held since before the period, with nothing recorded in it.
	held, err := s.ListRequests(ctx, lapse.RequestFilter{States: []lapse.State{lapse.StateActive, lapse.StateRevoking}, Limit: 1 << 30})
	if err != nil {
		return Report{}, fmt.Errorf("report: %w", err)
	}
	for _, r := range held {
		candidates[r.ID] = true
	}
	for id := range candidates {
		r, err := s.GetRequest(ctx, id)
		if err != nil {
			return Report{}, fmt.Errorf("report: %w", err)
		}
		if r.ActivatedAt.IsZero() || !r.ActivatedAt.Before(until) || (!r.EndedAt.IsZero() && r.EndedAt.Before(since)) {
			continue
		}
		g := grant(r, until)
		acts, err := s.ListAudit(ctx, lapse.AuditFilter{RequestID: r.ID, Type: lapse.EvActivity, Limit: maxActivity})
		if err != nil {
			return Report{}, fmt.Errorf("report: %w", err)
		}
		g.Activity, g.Used = len(acts), len(acts) > 0
		rep.Grants = append(rep.Grants, g)
	}
	slices.SortFunc(rep.Grants, func(a, b Grant) int {
		return cmp.Or(a.ActivatedAt.Compare(b.ActivatedAt), strings.Compare(a.RequestID, b.RequestID))
	})
	for _, g := range rep.Grants {
		if !g.Used {
			rep.Unused = append(rep.Unused, g.RequestID)
		}
	}
	rep.ByResource = summarize(rep, func(g Grant) (string, string) { return g.Resource, g.User },
		func(d Denial) string { return d.Resource })
	rep.ByUser = summarize(rep, func(g Grant) (string, string) { return g.User, g.Resource },
		func(d Denial) string { return d.User })
	return rep, nil
}

func grant(r lapse.Request, until time.Time) Grant {
	g := Grant{
		RequestID: r.ID, User: r.User, Resource: r.Resource, Role: r.Role, Reason: r.Reason, Ticket: r.Ticket,
		ActivatedAt: r.ActivatedAt.UTC(), EndReason: string(r.EndReason), EndedBy: r.EndedBy, ApprovedBy: []string{},
	}
	end := until
	if !r.EndedAt.IsZero() {
		e := r.EndedAt.UTC()
		g.EndedAt, end = &e, e
	}
	held := max(end.Sub(r.ActivatedAt), 0).Round(time.Second)
	g.Held, g.HeldSeconds = held.String(), held.Seconds()
	for _, a := range r.Approvals {
		g.ApprovedBy = append(g.ApprovedBy, a.By)
	}
	g.Auto = len(g.ApprovedBy) == 0
	return g
}

func denial(kind string, ev lapse.AuditEvent) Denial {
	d := Denial{Seq: ev.Seq, Time: ev.Time.UTC(), Kind: kind, RequestID: ev.RequestID, User: ev.User,
		Resource: ev.Resource, Role: ev.Role, By: ev.Actor}
	var data struct {
		Reason   string `json:"reason"`
		Decision struct {
			Policies []string `json:"policies"`
			Reasons  []string `json:"reasons"`
		} `json:"decision"`
	}
	_ = json.Unmarshal(ev.Data, &data)
	switch kind {
	case "refused", "extension_refused":
		// The request's own reason is in data.reason; why policy refused
		// is in the decision.
		d.By = "policy"
		d.Reason = strings.Join(data.Decision.Reasons, "; ")
		d.Policies = data.Decision.Policies
	default:
		d.Reason = data.Reason
	}
	return d
}

func summarize(rep Report, key func(Grant) (string, string), dkey func(Denial) string) []Summary {
	by := map[string]*Summary{}
	get := func(name string) *Summary {
		s, ok := by[name]
		if !ok {
			s = &Summary{Name: name, Others: []string{}}
			by[name] = s
		}
		return s
	}
	for _, g := range rep.Grants {
		name, other := key(g)
		s := get(name)
		s.Grants++
		s.HeldSeconds += g.HeldSeconds
		if !g.Used {
			s.Unused++
		}
		if !slices.Contains(s.Others, other) {
			s.Others = append(s.Others, other)
		}
	}
	for _, d := range rep.Denied {
		get(dkey(d)).Denied++
	}
	out := make([]Summary, 0, len(by))
	for _, s := range by {
		slices.Sort(s.Others)
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Summary) int { return strings.Compare(a.Name, b.Name) })
	return out
}
