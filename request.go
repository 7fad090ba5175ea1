package lapse

import (
	"maps"
	"slices"
	"time"
)

// State is where a [Request] is in its lifecycle.
type State string

// The states of a request. See DESIGN.md for the diagram.
const (
	StatePending   State = "pending"   // waiting for approvals
	StateApproved  State = "approved"  // approved, not yet provisioned (or waiting for its start)
	StateActive    State = "active"    // provisioned in the target; the window is running
	StateRevoking  State = "revoking"  // being removed from the target; not yet confirmed
	StateEnded     State = "ended"     // removal confirmed by the target
	StateDenied    State = "denied"    // refused by an approver
	StateCancelled State = "cancelled" // withdrawn before it became active
	StateTimedOut  State = "timed_out" // nobody decided within the pending TTL
	StateFailed    State = "failed"    // provisioning kept failing; nothing was left behind
)

// States lists every state, in lifecycle order.
var States = []State{StatePending, StateApproved, StateActive, StateRevoking, StateEnded, StateDenied, StateCancelled, StateTimedOut, StateFailed}

// Terminal reports whether no transition leaves s.
func (s State) Terminal() bool {
	switch s {
	case StateEnded, StateDenied, StateCancelled, StateTimedOut, StateFailed:
		return true
	}
	return false
}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool { return slices.Contains(States, s) }

// EndReason says why an active grant ended.
type EndReason string

// The reasons a grant ends.
const (
	EndExpired  EndReason = "expired"
	EndReleased EndReason = "released"
	EndRevoked  EndReason = "revoked"
)

// Approval is one approver's yes.
type Approval struct {
	By string `json:"by"`
	// Groups are the approver's groups when they approved, so that the
	// approval can be checked again against the policy in force.
	Groups  []string  `json:"groups,omitempty"`
	At      time.Time `json:"at"`
	Comment string    `json:"comment,omitempty"`
}

// Extension is a request to move an active grant's expiry that still waits
// for approvals.
type Extension struct {
	Duration        time.Duration `json:"duration"`
	Reason          string        `json:"reason"`
	RequestedAt     time.Time     `json:"requested_at"`
	ApprovalsNeeded int           `json:"approvals_needed"`
	Approvals       []Approval    `json:"approvals,omitempty"`
}

// Request is one ask for one role on one resource, and the grant it becomes
// once active. Its methods are the state machine: each returns the changed
// copy or an error, and never modifies the receiver.
type Request struct {
	ID       string
	User     string
	Resource string
	Role     string
	Reason   string
	Ticket   string
	// Duration is the length of the window; the clock starts at activation.
	Duration time.Duration
	// StartAt, if set, is the earliest moment the grant may become active
	// (a maintenance window).
	StartAt time.Time
	// Inputs are what the requester hands in for the connector, such as an
	// SSH public key to certify. They are never secret.
	Inputs map[string]string
	// ClientIP is the network address the request came from, as the server
	// saw it; empty when unknown.
	ClientIP string
	// Device names the device the request was made from; empty when none.
	Device string

	State     State
	CreatedAt time.Time
	UpdatedAt time.Time
	// PendingUntil is when a pending request times out.
	PendingUntil    time.Time
	ApprovalsNeeded int
	Approvals       []Approval

	ActivatedAt time.Time
	ExpiresAt   time.Time
	EndedAt     time.Time
	EndReason   EndReason
	// EndedBy is who released, revoked, denied or cancelled the request.
	EndedBy string
	// Note is the reason given by whoever denied, revoked or cancelled it.
	Note string

	// Extension is a pending extension waiting for approvals.
	Extension *Extension

	// Ref is the connector's handle on what it provisioned (a role name, a
	// certificate serial); empty until provisioned.
	Ref string
	// Outputs are the non-secret results of provisioning that the requester
	// may read again, such as an SSH certificate.
	Outputs map[string]string
	// Attempts counts connector calls for the current step (provision or
	// revoke); reset when the step changes.
	Attempts int
	// NextAt is when the scheduler must next look at the request; zero when
	// nothing is due. While a worker holds a claim it is the claim's end.
	NextAt time.Time
	// Owner names the worker that holds the current claim, if any.
	Owner string
	// LastError is the last connector error of the current step, for humans.
	LastError string
	// CredentialsWaiting reports sealed credentials that the requester has
	// not yet fetched.
	CredentialsWaiting bool

	// Version increases with every stored change; stores use it for
	// optimistic concurrency.
	Version int64
}

// Action names what is done to a request. Actions appear in audit records and
// in refused-transition errors.
type Action string

// The actions of the state machine.
const (
	ActSubmit          Action = "submit"
	ActApprove         Action = "approve"
	ActDeny            Action = "deny"
	ActCancel          Action = "cancel"
	ActTimeout         Action = "time out"
	ActActivate        Action = "activate"
	ActProvisionFailed Action = "fail provisioning of"
	ActExpire          Action = "expire"
	ActRelease         Action = "release"
	ActRevoke          Action = "revoke"
	ActExtend          Action = "extend"
	ActConfirmRevoked  Action = "confirm revocation of"
	ActRevokeFailed    Action = "retry revocation of"
	ActClaim           Action = "claim"
)

// edges lists, for each action, the states it may start from and the state
// it leads to. It is the whole state machine; the methods below check it.
var edges = map[Action]struct {
	from []State
	to   State
}{
	ActApprove:         {[]State{StatePending, StateActive}, StateApproved},
	ActDeny:            {[]State{StatePending, StateActive}, StateDenied},
	ActCancel:          {[]State{StatePending, StateApproved}, StateCancelled},
	ActTimeout:         {[]State{StatePending}, StateTimedOut},
	ActActivate:        {[]State{StateApproved}, StateActive},
	ActProvisionFailed: {[]State{StateApproved}, StateFailed},
	ActExpire:          {[]State{StateActive}, StateRevoking},
	ActRelease:         {[]State{StateActive}, StateRevoking},
	ActRevoke:          {[]State{StateActive, StateApproved}, StateRevoking},
	ActExtend:          {[]State{StateActive}, StateActive},
	ActConfirmRevoked:  {[]State{StateRevoking}, StateEnded},
	ActRevokeFailed:    {[]State{StateRevoking}, StateRevoking},
	ActClaim:           {[]State{StateApproved, StateRevoking}, StateApproved},
}

// Allowed reports whether action a may start from state s.
func Allowed(a Action, s State) bool {
	e, ok := edges[a]
	return ok && slices.Contains(e.from, s)
}

func (r Request) check(a Action) error {
	if Allowed(a, r.State) {
		return nil
	}
	to := edges[a].to
	return &TransitionError{Action: a, From: r.State, To: to}
}

// clone returns a copy that shares no slices or pointers with r.
func (r Request) clone() Request {
	r.Approvals = slices.Clone(r.Approvals)
	r.Inputs = maps.Clone(r.Inputs)
	r.Outputs = maps.Clone(r.Outputs)
	if r.Extension != nil {
		ext := *r.Extension
		ext.Approvals = slices.Clone(ext.Approvals)
		r.Extension = &ext
	}
	return r
}

// NewRequest validates a fresh request and returns it pending, or approved at
// once when approvalsNeeded is zero. now is the submission time.
func NewRequest(r Request, approvalsNeeded int, pendingTTL time.Duration, now time.Time) (Request, error) {
	switch {
	case r.ID == "":
		return Request{}, Invalidf("request has no id")
	case r.User == "":
		return Request{}, Invalidf("request has no user")
	case r.Resource == "":
		return Request{}, Invalidf("resource is required")
	case r.Role == "":
		return Request{}, Invalidf("role is required")
	case r.Duration <= 0:
		return Request{}, Invalidf("duration must be positive, got %s", r.Duration)
	case r.Reason == "":
		return Request{}, Invalidf("a reason is required")
	case approvalsNeeded < 0:
		return Request{}, Invalidf("approvals needed must not be negative")
	case pendingTTL <= 0:
		return Request{}, Invalidf("pending TTL must be positive")
	}
	r = r.clone()
	r.CreatedAt, r.UpdatedAt = now, now
	r.ApprovalsNeeded = approvalsNeeded
	r.Approvals = nil
	r.State = StatePending
	r.PendingUntil = now.Add(pendingTTL)
	if !r.StartAt.IsZero() && r.StartAt.Before(now) {
		r.StartAt = time.Time{}
	}
	r.NextAt = r.PendingUntil
	if approvalsNeeded == 0 {
		r = r.toApproved(now)
	}
	return r, nil
}

func (r Request) toApproved(now time.Time) Request {
	r.State = StateApproved
	r.UpdatedAt = now
	r.Attempts = 0
	r.LastError = ""
	r.NextAt = now
	if r.StartAt.After(now) {
		r.NextAt = r.StartAt
	}
	return r
}

// Approve records approver's approval. It refuses the requester approving
// their own request and an approver approving twice. When the request is
// active with a pending extension, the approval counts for the extension; the
// caller then applies it with [Request.ApplyExtension] once
// [Request.ExtensionApproved] reports true.
func (r Request) Approve(approver, comment string, now time.Time) (Request, error) {
	if err := r.check(ActApprove); err != nil {
		return Request{}, err
	}
	if approver == r.User {
		return Request{}, Forbiddenf("%s cannot approve their own request", approver)
	}
	if err := r.checkNotTimedOut(now); err != nil {
		return Request{}, err
	}
	r = r.clone()
	a := Approval{By: approver, At: now, Comment: comment}
	if r.State == StateActive {
		if r.Extension == nil {
			return Request{}, &TransitionError{Action: ActApprove, From: r.State, To: StateApproved}
		}
		if hasApproval(r.Extension.Approvals, approver) {
			return Request{}, Conflictf("%s already approved this extension", approver)
		}
		r.Extension.Approvals = append(r.Extension.Approvals, a)
		r.UpdatedAt = now
		return r, nil
	}
	if hasApproval(r.Approvals, approver) {
		return Request{}, Conflictf("%s already approved this request", approver)
	}
	r.Approvals = append(r.Approvals, a)
	r.UpdatedAt = now
	if len(r.Approvals) >= r.ApprovalsNeeded {
		r = r.toApproved(now)
	}
	return r, nil
}

// checkNotTimedOut refuses a decision on a pending request whose time to
// decide has passed, whether or not the scheduler has timed it out yet.
func (r Request) checkNotTimedOut(now time.Time) error {
	if r.State == StatePending && !now.Before(r.PendingUntil) {
		return Conflictf("request %s timed out at %s waiting for approvals", r.ID, r.PendingUntil.UTC().Format(time.RFC3339))
	}
	return nil
}

// WithApprover returns a copy whose latest approval by approver records
// the approver's groups.
func (r Request) WithApprover(approver string, groups []string) Request {
	r = r.clone()
	set := func(as []Approval) {
		for i := range as {
			if as[i].By == approver {
				as[i].Groups = slices.Clone(groups)
			}
		}
	}
	set(r.Approvals)
	if r.Extension != nil {
		set(r.Extension.Approvals)
	}
	return r
}

// KeepApprovals drops the approvals, of the request and of a pending
// extension, for which keep returns false: approvals that the policy now in
// force would not accept. It only applies to a request still waiting.
func (r Request) KeepApprovals(keep func(Approval) bool) Request {
	r = r.clone()
	filter := func(as []Approval) []Approval {
		return slices.DeleteFunc(as, func(a Approval) bool { return !keep(a) })
	}
	if r.State == StatePending {
		r.Approvals = filter(r.Approvals)
	}
	if r.Extension != nil {
		r.Extension.Approvals = filter(r.Extension.Approvals)
	}
	return r
}

func hasApproval(as []Approval, who string) bool {
	return slices.ContainsFunc(as, func(a Approval) bool { return a.By == who })
}

// Deny refuses a pending request, or drops the pending extension of an
// active one (the grant itself stays active).
func (r Request) Deny(by, reason string, now time.Time) (Request, error) {
	if err := r.check(ActDeny); err != nil {
		return Request{}, err
	}
	if reason == "" {
		return Request{}, Invalidf("a reason is required to deny")
	}
	if by == r.User {
		return Request{}, Forbiddenf("%s cannot decide on their own request", by)
	}
	if err := r.checkNotTimedOut(now); err != nil {
		return Request{}, err
	}
	r = r.clone()
	r.UpdatedAt = now
	if r.State == StateActive {
		if r.Extension == nil {
			return Request{}, &TransitionError{Action: ActDeny, From: r.State, To: StateDenied}
		}
		r.Extension = nil
		return r, nil
	}
	r.State = StateDenied
	r.EndedAt, r.EndedBy, r.Note = now, by, reason
	r.NextAt = time.Time{}
	return r, nil
}

// Cancel withdraws a request that is not active yet.
func (r Request) Cancel(by, note string, now time.Time) (Request, error) {
	if err := r.check(ActCancel); err != nil {
		return Request{}, err
	}
	r = r.clone()
	r.State = StateCancelled
	r.EndedAt, r.EndedBy, r.Note, r.UpdatedAt = now, by, note, now
	r.NextAt, r.Owner = time.Time{}, ""
	return r, nil
}

// TimeOut ends a pending request nobody decided on by its PendingUntil.
func (r Request) TimeOut(now time.Time) (Request, error) {
	if err := r.check(ActTimeout); err != nil {
		return Request{}, err
	}
	if now.Before(r.PendingUntil) {
		return Request{}, Conflictf("request %s is pending until %s", r.ID, r.PendingUntil.Format(time.RFC3339))
	}
	r = r.clone()
	r.State = StateTimedOut
	r.EndedAt, r.UpdatedAt = now, now
	r.NextAt = time.Time{}
	return r, nil
}

// Claim marks an approved or revoking request as being worked on by owner
// until now+lease, so that no other worker calls the connector for it at the
// same time. It counts the attempt.
func (r Request) Claim(owner string, now time.Time, lease time.Duration) (Request, error) {
	if err := r.check(ActClaim); err != nil {
		return Request{}, err
	}
	r = r.clone()
	r.Owner = owner
	r.NextAt = now.Add(lease)
	r.Attempts++
	r.UpdatedAt = now
	return r, nil
}

// Activate records a successful provisioning: the window starts now.
func (r Request) Activate(ref string, now time.Time) (Request, error) {
	if err := r.check(ActActivate); err != nil {
		return Request{}, err
	}
	r = r.clone()
	r.State = StateActive
	r.Ref = ref
	r.ActivatedAt = now
	r.ExpiresAt = now.Add(r.Duration)
	r.NextAt = r.ExpiresAt
	r.Owner, r.LastError, r.Attempts = "", "", 0
	r.UpdatedAt = now
	return r, nil
}

// ProvisionFailed records a failed provisioning attempt. With retryAt set
// the request stays approved and is tried again then; with retryAt zero it
// fails for good (the caller has made sure nothing is left in the target).
func (r Request) ProvisionFailed(msg string, retryAt, now time.Time) (Request, error) {
	if err := r.check(ActProvisionFailed); err != nil {
		return Request{}, err
	}
	r = r.clone()
	r.LastError = msg
	r.Owner = ""
	r.UpdatedAt = now
	if !retryAt.IsZero() {
		r.NextAt = retryAt
		return r, nil
	}
	r.State = StateFailed
	r.EndedAt = now
	r.NextAt = time.Time{}
	return r, nil
}

// Expire starts the revocation of a grant whose window has passed.
func (r Request) Expire(now time.Time) (Request, error) {
	if err := r.check(ActExpire); err != nil {
		return Request{}, err
	}
	if now.Before(r.ExpiresAt) {
		return Request{}, Conflictf("request %s does not expire until %s", r.ID, r.ExpiresAt.Format(time.RFC3339Nano))
	}
	return r.toRevoking(EndExpired, "", "", now), nil
}

// Release ends a grant early at the requester's wish.
func (r Request) Release(by string, now time.Time) (Request, error) {
	if err := r.check(ActRelease); err != nil {
		return Request{}, err
	}
	return r.toRevoking(EndReleased, by, "", now), nil
}

// Revoke ends a grant (or an approved request not yet active) by an
// admin's decision.
func (r Request) Revoke(by, reason string, now time.Time) (Request, error) {
	if err := r.check(ActRevoke); err != nil {
		return Request{}, err
	}
	if reason == "" {
		return Request{}, Invalidf("a reason is required to revoke")
	}
	return r.toRevoking(EndRevoked, by, reason, now), nil
}

func (r Request) toRevoking(reason EndReason, by, note string, now time.Time) Request {
	r = r.clone()
	r.State = StateRevoking
	r.EndReason = reason
	r.EndedBy, r.Note = by, note
	r.Extension = nil
	r.Attempts, r.LastError, r.Owner = 0, "", ""
	r.CredentialsWaiting = false
	r.NextAt = now
	r.UpdatedAt = now
	return r
}

// RequestExtension asks for d more time on an active grant. With zero
// approvals needed the expiry moves at once (see [Request.ApplyExtension]);
// otherwise the extension waits for approvals.
func (r Request) RequestExtension(d time.Duration, reason string, approvalsNeeded int, now time.Time) (Request, error) {
	if err := r.check(ActExtend); err != nil {
		return Request{}, err
	}
	switch {
	case d <= 0:
		return Request{}, Invalidf("duration must be positive, got %s", d)
	case reason == "":
		return Request{}, Invalidf("a reason is required")
	case r.Extension != nil:
		return Request{}, Conflictf("request %s already has an extension waiting for approval", r.ID)
	case !now.Before(r.ExpiresAt):
		return Request{}, Conflictf("request %s has already expired", r.ID)
	}
	r = r.clone()
	r.Extension = &Extension{Duration: d, Reason: reason, RequestedAt: now, ApprovalsNeeded: approvalsNeeded}
	r.UpdatedAt = now
	return r, nil
}

// ExtensionApproved reports whether a pending extension has all the
// approvals it needs.
func (r Request) ExtensionApproved() bool {
	return r.Extension != nil && len(r.Extension.Approvals) >= r.Extension.ApprovalsNeeded
}

// ExtendedExpiry is the expiry that applying the pending extension gives.
func (r Request) ExtendedExpiry() time.Time {
	if r.Extension == nil {
		return r.ExpiresAt
	}
	return r.ExpiresAt.Add(r.Extension.Duration)
}

// ApplyExtension moves the expiry by the approved pending extension. The
// caller has already moved the expiry in the target.
func (r Request) ApplyExtension(now time.Time) (Request, error) {
	if err := r.check(ActExtend); err != nil {
		return Request{}, err
	}
	if !r.ExtensionApproved() {
		return Request{}, Conflictf("request %s has no approved extension", r.ID)
	}
	if !now.Before(r.ExpiresAt) {
		return Request{}, Conflictf("request %s has already expired", r.ID)
	}
	r = r.clone()
	r.ExpiresAt = r.ExtendedExpiry()
	r.Duration = r.ExpiresAt.Sub(r.ActivatedAt)
	r.Extension = nil
	r.NextAt = r.ExpiresAt
	r.UpdatedAt = now
	return r, nil
}

// ConfirmRevoked records that the target confirmed the access is gone.
func (r Request) ConfirmRevoked(now time.Time) (Request, error) {
	if err := r.check(ActConfirmRevoked); err != nil {
		return Request{}, err
	}
	r = r.clone()
	r.State = StateEnded
	r.EndedAt = now
	r.NextAt, r.Owner, r.LastError = time.Time{}, "", ""
	r.CredentialsWaiting = false
	r.UpdatedAt = now
	return r, nil
}

// RevokeFailed records a failed revocation attempt; the request stays
// revoking and is tried again at retryAt. Revocation never gives up.
func (r Request) RevokeFailed(msg string, retryAt, now time.Time) (Request, error) {
	if err := r.check(ActRevokeFailed); err != nil {
		return Request{}, err
	}
	if retryAt.IsZero() {
		return Request{}, Invalidf("a failed revocation needs a retry time")
	}
	r = r.clone()
	r.LastError = msg
	r.Owner = ""
	r.NextAt = retryAt
	r.UpdatedAt = now
	return r, nil
}

// Active reports whether r grants access at now.
func (r Request) Active(now time.Time) bool {
	return r.State == StateActive && now.Before(r.ExpiresAt)
}

// Due reports whether the scheduler must act on r at now.
func (r Request) Due(now time.Time) bool {
	return !r.NextAt.IsZero() && !now.Before(r.NextAt)
}

// Grant returns what a connector is given for r, with the expiry and the
// role's connector settings.
func (r Request) Grant(expires time.Time, settings any) Grant {
	return Grant{ID: r.ID, User: r.User, Resource: r.Resource, Role: r.Role, ExpiresAt: expires,
		Ref: r.Ref, Settings: settings, Reason: r.Reason, Inputs: maps.Clone(r.Inputs), ClientIP: r.ClientIP}
}
