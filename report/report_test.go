package report_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/report"
)

var t0 = time.Date(2031, 5, 1, 9, 0, 0, 0, time.UTC)

// TestReport builds a report on a crafted history: a grant approved by a
// human and used, one approved by policy, never used and still held, one
// held from before the period into it, one over before the period, a
// human denial, a policy refusal, and activity of a grant outside the
// period.
func TestReport(t *testing.T) {
	ctx := t.Context()
	s := lapsetest.OpenStore(t)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	grant := func(id, user, res, role, reason string, on, off int, approvers ...string) lapse.Request {
		r := lapse.Request{ID: id, User: user, Resource: res, Role: role, Reason: reason, Duration: time.Hour,
			State: lapse.StateActive, CreatedAt: at(on - 1), UpdatedAt: at(on), ActivatedAt: at(on), ExpiresAt: at(on + 60)}
		for _, a := range approvers {
			r.Approvals = append(r.Approvals, lapse.Approval{By: a, At: at(on)})
		}
		if off != 0 {
			r.State, r.EndedAt, r.EndReason, r.EndedBy = lapse.StateEnded, at(off), lapse.EndRevoked, "carol"
		}
		return r
	}
	rs := []lapse.Request{
		grant("used", "alice", "orders-db", "admin", "INC-1", 10, 40, "bob"),
		grant("idle", "dave", "app", "read", "look around", 20, 0),
		grant("before", "alice", "app", "read", "INC-0", -30, 15),
		grant("old", "erin", "orders-db", "read", "INC-00", -300, -200),
		{ID: "denied", User: "dave", Resource: "orders-db", Role: "admin", Reason: "curious", State: lapse.StateDenied, CreatedAt: at(50)},
	}
	var evs []lapse.AuditEvent
	ev := func(typ, actor string, r lapse.Request, data any, m int) {
		evs = append(evs, lapse.NewAuditEvent(typ, actor, "", r, data, at(m)))
	}
	ev(lapse.EvProvisioned, "lapse", rs[3], nil, -300)
	ev(lapse.EvActivity, "lapse", rs[3], nil, -250)
	ev(lapse.EvProvisioned, "lapse", rs[0], nil, 10)
	ev(lapse.EvActivity, "lapse", rs[0], map[string]string{"query": "SELECT 1"}, 12)
	ev(lapse.EvActivity, "lapse", rs[0], map[string]string{"query": "SELECT 2"}, 13)
	ev(lapse.EvEnded, "lapse", rs[2], nil, 15)
	ev(lapse.EvProvisioned, "lapse", rs[1], nil, 20)
	ev(lapse.EvEnded, "lapse", rs[0], nil, 40)
	ev(lapse.EvDenied, "bob", rs[4], map[string]string{"reason": "not without a ticket"}, 51)
	ev(lapse.EvRefused, "erin", lapse.Request{User: "erin", Resource: "orders-db", Role: "admin"}, map[string]any{
		"reason": "INC-9", "decision": map[string]any{"allow": false, "policies": []string{"allowed-countries"}, "reasons": []string{"access is only granted from DE"}}}, 55)
	err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		for i := range rs {
			if err := tx.CreateRequest(ctx, &rs[i]); err != nil {
				return err
			}
		}
		return tx.AppendAudit(ctx, evs...)
	})
	if err != nil {
		t.Fatal(err)
	}

	rep, err := report.Build(ctx, s, at(0), at(120))
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		ID, Held string
		Approved []string
		Auto     bool
		Activity int
	}
	var got []row
	for _, g := range rep.Grants {
		got = append(got, row{g.RequestID, g.Held, g.ApprovedBy, g.Auto, g.Activity})
	}
	want := []row{
		{"before", "45m0s", []string{}, true, 0},
		{"used", "30m0s", []string{"bob"}, false, 2},
		{"idle", "1h40m0s", []string{}, true, 0},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("grants (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"before", "idle"}, rep.Unused); d != "" {
		t.Errorf("unused (-want +got):\n%s", d)
	}
	if len(rep.Denied) != 2 {
		t.Fatalf("denied: %+v", rep.Denied)
	}
	if d := rep.Denied[0]; d.Kind != "denied" || d.By != "bob" || d.Reason != "not without a ticket" || d.RequestID != "denied" {
		t.Errorf("denial: %+v", d)
	}
	if d := rep.Denied[1]; d.Kind != "refused" || d.By != "policy" || d.Reason != "access is only granted from DE" ||
		len(d.Policies) != 1 || d.Policies[0] != "allowed-countries" || d.User != "erin" {
		t.Errorf("refusal: %+v", d)
	}
	byRes := map[string]report.Summary{}
	for _, s := range rep.ByResource {
		byRes[s.Name] = s
	}
	if s := byRes["orders-db"]; s.Grants != 1 || s.Denied != 2 || s.Unused != 0 || s.HeldSeconds != 1800 {
		t.Errorf("orders-db: %+v", s)
	}
	if s := byRes["app"]; s.Grants != 2 || s.Unused != 2 || len(s.Others) != 2 {
		t.Errorf("app: %+v", s)
	}
}
