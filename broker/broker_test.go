package broker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/broker"
	"github.com/lapse-access/lapse/expiry"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/seal"
)

type rig struct {
	st    lapse.Store
	clock *lapsetest.Clock
	conn  *lapsetest.Connector
	sched *expiry.Scheduler
	br    *broker.Broker
}

func newRig(t *testing.T, approvals int, approvers []string) *rig {
	st := lapsetest.OpenStore(t)
	clock := lapsetest.NewClock(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC))
	conn := lapsetest.NewConnector()
	box, _ := seal.New(make([]byte, 32))
	catalog := &lapse.Catalog{Resources: []lapse.Resource{{Name: "db", Connector: "c", Roles: []lapse.Role{
		{Name: "read", MaxDuration: 4 * time.Hour, Approvals: approvals, Approvers: approvers, Requesters: []string{"eng"}}}}}}
	target := func(string, string) (lapse.Connector, any, error) { return conn, nil, nil }
	sched := &expiry.Scheduler{Store: st, Target: target, Sealer: box, Clock: clock}
	br := &broker.Broker{Store: st, Catalog: catalog, Decider: lapsetest.Policies{Catalog: catalog}, Executor: sched, Target: target,
		Sealer: box, Clock: clock, PendingTTL: time.Hour}
	return &rig{st, clock, conn, sched, br}
}

var (
	alice = lapse.Principal{Name: "alice", Groups: []string{"eng"}}
	bob   = lapse.Principal{Name: "bob", Groups: []string{"leads"}}
	carol = lapse.Principal{Name: "carol", Groups: []string{"leads"}}
	dave  = lapse.Principal{Name: "dave", Groups: []string{"security"}}
	mallo = lapse.Principal{Name: "mallory", Groups: []string{"eng"}}
)

func submit(t *testing.T, r *rig, p lapse.Principal) lapse.Request {
	t.Helper()
	res, err := r.br.Submit(t.Context(), p, broker.SubmitInput{Resource: "db", Role: "read", Duration: time.Hour, Reason: "INC-1"})
	if err != nil {
		t.Fatal(err)
	}
	return res.Request
}

// A pending request whose TTL has passed cannot be approved, even before
// the scheduler has timed it out.
func TestApprovalAfterPendingTTLIsRefused(t *testing.T) {
	r := newRig(t, 1, []string{"leads"})
	req := submit(t, r, alice)
	r.clock.Advance(2 * time.Hour) // PendingTTL is 1 h; no scheduler pass ran
	res, err := r.br.Approve(t.Context(), bob, req.ID, "")
	if !errors.Is(err, lapse.ErrConflict) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("approval 1 h after the pending TTL: %v (request %s); want a conflict", err, res.Request.State)
	}
}

// After a policy change, an approval given by someone who is no longer an
// approver does not count toward the total.
func TestApprovalsNoLongerAllowedDoNotCount(t *testing.T) {
	r := newRig(t, 2, []string{"leads"})
	req := submit(t, r, alice)
	if _, err := r.br.Approve(t.Context(), bob, req.ID, ""); err != nil {
		t.Fatal(err)
	}
	// Config change (restart): approvers are now "security" only.
	r.br.Catalog.Resources[0].Roles[0].Approvers = []string{"security"}
	if _, err := r.br.Approve(t.Context(), carol, req.ID, ""); err == nil {
		t.Fatal("carol is no longer an approver but approved")
	}
	res, err := r.br.Approve(t.Context(), dave, req.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Request.State != lapse.StatePending {
		t.Fatalf("one currently-allowed approval (dave) + one stale (bob) made the request %s; approvals %v",
			res.Request.State, res.Request.Approvals)
	}
}

// Credentials of an expired grant whose revocation is not yet confirmed
// are not handed out, and none are left sealed in the store.
func TestNoCredentialsForAnExpiredGrant(t *testing.T) {
	r := newRig(t, 1, []string{"leads"})
	req := submit(t, r, alice)
	res, err := r.br.Approve(t.Context(), bob, req.ID, "")
	if err != nil || res.Request.State != lapse.StateActive || !res.Request.CredentialsWaiting {
		t.Fatalf("approve: %v %s waiting=%v", err, res.Request.State, res.Request.CredentialsWaiting)
	}
	r.conn.SetFailRevoke(errors.New("target down"))
	r.clock.Advance(2 * time.Hour)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = r.sched.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cur, _ := r.st.GetRequest(t.Context(), req.ID)
		if cur.State == lapse.StateRevoking && cur.Attempts >= 1 && cur.Owner == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %s", cur.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	c, err := r.br.TakeCredentials(t.Context(), alice, req.ID)
	if !errors.Is(err, lapse.ErrGone) {
		t.Fatalf("credentials of an expired (revoking) grant: %v, %v; want gone", c, err)
	}
	err = r.st.Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error {
		_, err := tx.TakeSecret(ctx, req.ID)
		return err
	})
	if !errors.Is(err, lapse.ErrNotFound) {
		t.Fatalf("sealed credentials left in the store: %v", err)
	}
}

// An approval that policy refuses is audited.
func TestRefusedApprovalIsAudited(t *testing.T) {
	r := newRig(t, 1, []string{"leads"})
	req := submit(t, r, alice)
	_, err := r.br.Approve(t.Context(), mallo, req.ID, "")
	if !errors.Is(err, lapse.ErrForbidden) {
		t.Fatalf("want forbidden, got %v", err)
	}
	evs, err := r.st.ListAudit(t.Context(), lapse.AuditFilter{RequestID: req.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if ev.Actor == "mallory" {
			return
		}
	}
	t.Fatalf("policy refused mallory's approval; audit has %d events, none by mallory", len(evs))
}

// A user's own request does not disappear behind newer requests of
// others.
func TestListKeepsOwnRequestsBehindOthers(t *testing.T) {
	r := newRig(t, 1, []string{"leads"})
	mine := submit(t, r, alice)
	for i := range 500 {
		r.clock.Advance(time.Millisecond)
		_ = i
		submit(t, r, mallo)
	}
	rs, err := r.br.List(t.Context(), alice, broker.ListInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range rs {
		if q.ID == mine.ID {
			return
		}
	}
	t.Fatalf("alice's own pending request %s missing from her listing (%d shown)", mine.ID, len(rs))
}

// Re-evaluation revokes a grant that policy no longer permits, and leaves
// one past its expiry to the scheduler, which ends it as expired.
func TestReevaluateLeavesExpiredGrantsToTheScheduler(t *testing.T) {
	r := newRig(t, 0, nil)
	inWindow := submit(t, r, alice)
	r.clock.Advance(30 * time.Minute)
	late, err := r.br.Submit(t.Context(), alice, broker.SubmitInput{Resource: "db", Role: "read", Duration: 10 * time.Minute, Reason: "INC-2"})
	if err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(20 * time.Minute) // late is past its expiry; inWindow is not
	r.br.Catalog.Resources[0].Roles[0].Requesters = []string{"sales"}
	n, err := r.br.Reevaluate(t.Context(), nil)
	if err != nil || n != 1 {
		t.Fatalf("Reevaluate = %d, %v; want 1", n, err)
	}
	if got, _ := r.st.GetRequest(t.Context(), inWindow.ID); got.EndReason != lapse.EndRevoked || !strings.Contains(got.Note, "no longer permitted") {
		t.Fatalf("grant in its window: %s %s %q", got.State, got.EndReason, got.Note)
	}
	if got, _ := r.st.GetRequest(t.Context(), late.Request.ID); got.State != lapse.StateActive {
		t.Fatalf("expired grant: %s, want it left active for the scheduler", got.State)
	}
}

// The timeline of a request is for those who may see it; approvers see its
// lifecycle but not the requester's activity.
func TestTimeline(t *testing.T) {
	r := newRig(t, 1, []string{"leads"})
	req := submit(t, r, alice)
	if _, err := r.br.Approve(t.Context(), bob, req.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	activity := lapse.NewAuditEvent(lapse.EvActivity, "lapse", lapse.StateActive, req, map[string]string{"query": "select 1"}, r.clock.Now())
	if err := r.st.Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error { return tx.AppendAudit(ctx, activity) }); err != nil {
		t.Fatal(err)
	}
	types := func(p lapse.Principal) []string {
		t.Helper()
		evs, err := r.br.Timeline(t.Context(), p, req.ID)
		if err != nil {
			t.Fatalf("timeline for %s: %v", p.Name, err)
		}
		var out []string
		for _, e := range evs {
			if e.RequestID != req.ID {
				t.Fatalf("timeline of %s holds a record of %s", req.ID, e.RequestID)
			}
			out = append(out, e.Type)
		}
		return out
	}
	want := []string{lapse.EvRequested, lapse.EvApproved, lapse.EvProvisioned, lapse.EvActivity}
	if got := types(alice); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("alice's timeline: %v, want %v", got, want)
	}
	if got := types(lapse.Principal{Name: "sec", Admin: true}); len(got) != len(want) {
		t.Fatalf("admin's timeline: %v, want %v", got, want)
	}
	if got := types(carol); strings.Join(got, " ") != strings.Join(want[:3], " ") {
		t.Fatalf("approver's timeline: %v, want %v", got, want[:3])
	}
	if _, err := r.br.Timeline(t.Context(), mallo, req.ID); !errors.Is(err, lapse.ErrForbidden) {
		t.Fatalf("mallory reads alice's timeline: %v, want forbidden", err)
	}
	if _, err := r.br.Timeline(t.Context(), alice, "nope"); !errors.Is(err, lapse.ErrNotFound) {
		t.Fatalf("timeline of an unknown request: %v, want not found", err)
	}
}
