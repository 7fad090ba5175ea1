package lapse_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// inState returns a request in state s, shaped as the state machine would
// leave it.
func inState(t *testing.T, s lapse.State) lapse.Request {
	t.Helper()
	r, err := lapse.NewRequest(lapse.Request{ID: "r1", User: "alice", Resource: "db", Role: "read", Duration: time.Hour, Reason: "INC-1"}, 1, 24*time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	must := func(r lapse.Request, err error) lapse.Request {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	switch s {
	case lapse.StatePending:
	case lapse.StateApproved:
		r = must(r.Approve("bob", "", t0))
	case lapse.StateActive:
		r = must(must(r.Approve("bob", "", t0)).Activate("ref", t0))
	case lapse.StateRevoking:
		r = must(must(must(r.Approve("bob", "", t0)).Activate("ref", t0)).Release("alice", t0))
	case lapse.StateEnded:
		r = must(must(must(must(r.Approve("bob", "", t0)).Activate("ref", t0)).Release("alice", t0)).ConfirmRevoked(t0))
	case lapse.StateDenied:
		r = must(r.Deny("bob", "no", t0))
	case lapse.StateCancelled:
		r = must(r.Cancel("alice", "", t0))
	case lapse.StateTimedOut:
		r = must(r.TimeOut(t0.Add(24 * time.Hour)))
	case lapse.StateFailed:
		r = must(must(r.Approve("bob", "", t0)).ProvisionFailed("boom", time.Time{}, t0))
	default:
		t.Fatalf("no fixture for %s", s)
	}
	if r.State != s {
		t.Fatalf("fixture for %s is %s", s, r.State)
	}
	return r
}

// late is a moment after every deadline of the fixtures.
var late = t0.Add(48 * time.Hour)

// actions applies each action in a way that is valid input, so that only the
// state decides whether it is allowed.
var actions = map[lapse.Action]func(r lapse.Request) (lapse.Request, error){
	lapse.ActApprove: func(r lapse.Request) (lapse.Request, error) {
		if r.State == lapse.StateActive {
			var err error
			if r, err = r.RequestExtension(time.Hour, "more", 1, t0); err != nil {
				return r, err
			}
		}
		return r.Approve("carol", "", t0)
	},
	lapse.ActDeny: func(r lapse.Request) (lapse.Request, error) {
		if r.State == lapse.StateActive {
			var err error
			if r, err = r.RequestExtension(time.Hour, "more", 1, t0); err != nil {
				return r, err
			}
		}
		return r.Deny("carol", "no", t0)
	},
	lapse.ActCancel:          func(r lapse.Request) (lapse.Request, error) { return r.Cancel("alice", "", t0) },
	lapse.ActTimeout:         func(r lapse.Request) (lapse.Request, error) { return r.TimeOut(late) },
	lapse.ActActivate:        func(r lapse.Request) (lapse.Request, error) { return r.Activate("ref", t0) },
	lapse.ActProvisionFailed: func(r lapse.Request) (lapse.Request, error) { return r.ProvisionFailed("x", time.Time{}, t0) },
	lapse.ActExpire:          func(r lapse.Request) (lapse.Request, error) { return r.Expire(late) },
	lapse.ActRelease:         func(r lapse.Request) (lapse.Request, error) { return r.Release("alice", t0) },
	lapse.ActRevoke:          func(r lapse.Request) (lapse.Request, error) { return r.Revoke("carol", "why", t0) },
	lapse.ActExtend:          func(r lapse.Request) (lapse.Request, error) { return r.RequestExtension(time.Hour, "more", 0, t0) },
	lapse.ActConfirmRevoked:  func(r lapse.Request) (lapse.Request, error) { return r.ConfirmRevoked(t0) },
	lapse.ActRevokeFailed:    func(r lapse.Request) (lapse.Request, error) { return r.RevokeFailed("x", t0.Add(time.Second), t0) },
	lapse.ActClaim:           func(r lapse.Request) (lapse.Request, error) { return r.Claim("w", t0, time.Minute) },
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	// want lists the states each action leads to from each state it is
	// allowed in; every other (state, action) pair must be refused.
	want := map[lapse.Action]map[lapse.State]lapse.State{
		lapse.ActApprove:         {lapse.StatePending: lapse.StateApproved, lapse.StateActive: lapse.StateActive},
		lapse.ActDeny:            {lapse.StatePending: lapse.StateDenied, lapse.StateActive: lapse.StateActive},
		lapse.ActCancel:          {lapse.StatePending: lapse.StateCancelled, lapse.StateApproved: lapse.StateCancelled},
		lapse.ActTimeout:         {lapse.StatePending: lapse.StateTimedOut},
		lapse.ActActivate:        {lapse.StateApproved: lapse.StateActive},
		lapse.ActProvisionFailed: {lapse.StateApproved: lapse.StateFailed},
		lapse.ActExpire:          {lapse.StateActive: lapse.StateRevoking},
		lapse.ActRelease:         {lapse.StateActive: lapse.StateRevoking},
		lapse.ActRevoke:          {lapse.StateActive: lapse.StateRevoking, lapse.StateApproved: lapse.StateRevoking},
		lapse.ActExtend:          {lapse.StateActive: lapse.StateActive},
		lapse.ActConfirmRevoked:  {lapse.StateRevoking: lapse.StateEnded},
		lapse.ActRevokeFailed:    {lapse.StateRevoking: lapse.StateRevoking},
		lapse.ActClaim:           {lapse.StateApproved: lapse.StateApproved, lapse.StateRevoking: lapse.StateRevoking},
	}
	for act, apply := range actions {
		for _, from := range lapse.States {
			t.Run(string(act)+"/"+string(from), func(t *testing.T) {
				r := inState(t, from)
				before := r
				got, err := apply(r)
				to, ok := want[act][from]
				if !ok {
					var te *lapse.TransitionError
					if !errors.As(err, &te) {
						t.Fatalf("want refused transition, got %v (state %s)", err, got.State)
					}
					if !errors.Is(err, lapse.ErrConflict) {
						t.Fatalf("refused transition must be a conflict: %v", err)
					}
					if msg := err.Error(); !strings.Contains(msg, string(from)) {
						t.Fatalf("message %q does not name the state %s", msg, from)
					}
					if lapse.Allowed(act, from) {
						t.Fatalf("Allowed(%s, %s) = true", act, from)
					}
					return
				}
				if err != nil {
					t.Fatalf("want %s, got error %v", to, err)
				}
				if got.State != to {
					t.Fatalf("want %s, got %s", to, got.State)
				}
				if before.State != from || len(before.Approvals) != len(r.Approvals) {
					t.Fatal("transition changed its receiver")
				}
			})
		}
	}
}

func TestStateCoverage(t *testing.T) {
	for _, s := range lapse.States {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
	}
	if lapse.State("bogus").Valid() {
		t.Error("bogus state valid")
	}
}

func TestNewRequestValidation(t *testing.T) {
	t.Parallel()
	ok := lapse.Request{ID: "r", User: "u", Resource: "db", Role: "read", Duration: time.Hour, Reason: "x"}
	tests := []struct {
		name   string
		mutate func(*lapse.Request)
		want   string
	}{
		{"no resource", func(r *lapse.Request) { r.Resource = "" }, "resource"},
		{"no role", func(r *lapse.Request) { r.Role = "" }, "role"},
		{"zero duration", func(r *lapse.Request) { r.Duration = 0 }, "duration"},
		{"negative duration", func(r *lapse.Request) { r.Duration = -time.Second }, "duration"},
		{"empty reason", func(r *lapse.Request) { r.Reason = "" }, "reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok
			tt.mutate(&r)
			_, err := lapse.NewRequest(r, 0, time.Hour, t0)
			if !errors.Is(err, lapse.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want invalid mentioning %q", err, tt.want)
			}
		})
	}
}

func TestAutoApproveAndStartAt(t *testing.T) {
	r, err := lapse.NewRequest(lapse.Request{ID: "r", User: "u", Resource: "db", Role: "read", Duration: time.Hour, Reason: "x", StartAt: t0.Add(2 * time.Hour)}, 0, time.Hour, t0)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != lapse.StateApproved || !r.NextAt.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("got %s due %s, want approved due at start", r.State, r.NextAt)
	}
	// The window's clock starts at activation, not at the request.
	a, err := r.Activate("ref", t0.Add(2*time.Hour+time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(3*time.Hour + time.Minute); !a.ExpiresAt.Equal(want) || !a.NextAt.Equal(want) {
		t.Fatalf("expires %s next %s, want %s", a.ExpiresAt, a.NextAt, want)
	}
}

func TestApprovals(t *testing.T) {
	r, _ := lapse.NewRequest(lapse.Request{ID: "r", User: "alice", Resource: "db", Role: "admin", Duration: time.Hour, Reason: "x"}, 2, time.Hour, t0)
	if _, err := r.Approve("alice", "", t0); !errors.Is(err, lapse.ErrForbidden) {
		t.Fatalf("self-approval: got %v, want forbidden", err)
	}
	r1, err := r.Approve("bob", "", t0)
	if err != nil || r1.State != lapse.StatePending {
		t.Fatalf("one of two approvals: %v %s", err, r1.State)
	}
	if _, err := r1.Approve("bob", "", t0); !errors.Is(err, lapse.ErrConflict) {
		t.Fatalf("second approval by the same approver: got %v, want conflict", err)
	}
	r2, err := r1.Approve("dave", "ok", t0)
	if err != nil || r2.State != lapse.StateApproved {
		t.Fatalf("two approvals: %v %s", err, r2.State)
	}
}

func TestTimeOutOnlyWhenDue(t *testing.T) {
	r := inState(t, lapse.StatePending)
	if _, err := r.TimeOut(r.PendingUntil.Add(-time.Nanosecond)); !errors.Is(err, lapse.ErrConflict) {
		t.Fatalf("early timeout: %v", err)
	}
	if got, err := r.TimeOut(r.PendingUntil); err != nil || got.State != lapse.StateTimedOut {
		t.Fatalf("timeout at deadline: %v", err)
	}
}

func TestExpireBoundary(t *testing.T) {
	r := inState(t, lapse.StateActive)
	if !r.Active(r.ExpiresAt.Add(-time.Nanosecond)) || r.Active(r.ExpiresAt) {
		t.Fatal("a grant is active strictly before its expiry")
	}
	if _, err := r.Expire(r.ExpiresAt.Add(-time.Nanosecond)); err == nil {
		t.Fatal("expired early")
	}
	got, err := r.Expire(r.ExpiresAt)
	if err != nil || got.State != lapse.StateRevoking || got.EndReason != lapse.EndExpired || !got.Due(r.ExpiresAt) {
		t.Fatalf("expire at expiry: %v %+v", err, got)
	}
}

func TestExtension(t *testing.T) {
	r := inState(t, lapse.StateActive)
	e, err := r.RequestExtension(30*time.Minute, "more", 1, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.RequestExtension(time.Minute, "again", 1, t0); !errors.Is(err, lapse.ErrConflict) {
		t.Fatalf("second extension: %v", err)
	}
	if _, err := e.ApplyExtension(t0); !errors.Is(err, lapse.ErrConflict) {
		t.Fatalf("unapproved extension applied: %v", err)
	}
	if _, err := e.Approve("alice", "", t0); !errors.Is(err, lapse.ErrForbidden) {
		t.Fatalf("self-approved extension: %v", err)
	}
	e, err = e.Approve("bob", "", t0)
	if err != nil || !e.ExtensionApproved() {
		t.Fatalf("approve extension: %v", err)
	}
	got, err := e.ApplyExtension(t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := r.ExpiresAt.Add(30 * time.Minute); !got.ExpiresAt.Equal(want) || !got.NextAt.Equal(want) || got.Extension != nil {
		t.Fatalf("extended to %s, want %s", got.ExpiresAt, want)
	}
}

func TestRevokeNeedsReasonAndRetryNeverGivesUp(t *testing.T) {
	r := inState(t, lapse.StateActive)
	if _, err := r.Revoke("carol", "", t0); !errors.Is(err, lapse.ErrInvalid) {
		t.Fatalf("revoke without reason: %v", err)
	}
	rv := inState(t, lapse.StateRevoking)
	if _, err := rv.RevokeFailed("down", time.Time{}, t0); err == nil {
		t.Fatal("a failed revocation without a retry time was accepted")
	}
	for i := range 100 {
		var err error
		rv, err = rv.Claim("w", t0, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if rv, err = rv.RevokeFailed("down", t0.Add(time.Duration(i)*time.Second), t0); err != nil || rv.State != lapse.StateRevoking {
			t.Fatalf("attempt %d: %v %s", i, err, rv.State)
		}
	}
	if rv.Attempts != 100 {
		t.Fatalf("attempts %d", rv.Attempts)
	}
}
