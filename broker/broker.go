package broker

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/lapse-access/lapse"
)

// Executor runs the connector step of a claimed request and records it;
// [expiry.Scheduler] implements it.
type Executor interface {
	Execute(ctx context.Context, r lapse.Request, deliver bool) (lapse.Request, *lapse.Credentials, error)
	// Notify says that requests changed, so timers are re-armed.
	Notify()
}

// Target resolves a resource's connector and a role's connector settings.
type Target func(resource, role string) (lapse.Connector, any, error)

// Broker runs the use cases. Set the fields, then call its methods
// concurrently.
type Broker struct {
	Store    lapse.Store
	Catalog  *lapse.Catalog
	Decider  lapse.Decider
	Executor Executor
	Target   Target
	Sealer   lapse.Sealer
	Clock    lapse.Clock
	Logger   *slog.Logger
	// Owner must be the Executor's claim owner.
	Owner string
	// Lease is how long an inline connector step holds its claim; default
	// 2 minutes.
	Lease time.Duration
	// PendingTTL is how long a request waits for approvals; default 24 h.
	PendingTTL time.Duration
	// MaxStartDelay bounds how far ahead a window may be scheduled; default
	// 30 days.
	MaxStartDelay time.Duration
	// CallTimeout bounds inline connector calls (extend); default 30 s.
	CallTimeout time.Duration
	// PostureMaxAge is the age after which a device's posture counts as
	// unknown; zero means it never does.
	PostureMaxAge time.Duration
	// Directory, if set, returns a user's current groups, for decisions
	// about grants made earlier (re-evaluation).
	Directory func(ctx context.Context, name string) (lapse.Principal, bool)
	// Network, if set, turns a request's IP into network signals (country,
	// trusted network); otherwise only the IP is known.
	Network func(ip netip.Addr) lapse.NetworkSignals
	// Risk, if set, scores a request by user from its other signals.
	Risk func(ctx context.Context, user string, s lapse.Signals, now time.Time) lapse.RiskSignals
}

// signals gathers what policy may know of a request by user from device
// and ip: the device's posture from the registry and the network. It also
// reports whether the registry holds the device.
func (b *Broker) signals(ctx context.Context, user, device, ip string, now time.Time) (s lapse.Signals, registered bool) {
	return b.signalsWith(ctx, lapse.MFASignals{}, user, device, ip, now)
}

// signalsWith is signals with what is known of the caller's second factor.
func (b *Broker) signalsWith(ctx context.Context, mfa lapse.MFASignals, user, device, ip string, now time.Time) (s lapse.Signals, registered bool) {
	s.MFA = mfa
	if device != "" {
		d, err := b.Store.GetDevice(ctx, device)
		if err != nil && !errors.Is(err, lapse.ErrNotFound) {
			b.logger().Error("read device posture", "device", device, "err", err)
		}
		registered = err == nil
		s.Device = d.Signals(device, user, now, b.PostureMaxAge)
	}
	if addr, err := netip.ParseAddr(ip); err == nil {
		s.Network.IP = addr
		if b.Network != nil {
			s.Network = b.Network(addr)
		}
	}
	if b.Risk != nil {
		s.Risk = b.Risk(ctx, user, s, now)
	}
	return s, registered
}

// Result is the outcome of a use case.
type Result struct {
	Request lapse.Request
	// Credentials are set only for the requester, once.
	Credentials *lapse.Credentials
	Decision    *lapse.Decision
}

// Now is the broker's clock's time.
func (b *Broker) Now() time.Time { return b.now() }

func (b *Broker) now() time.Time {
	if b.Clock == nil {
		return time.Now()
	}
	return b.Clock.Now()
}

func (b *Broker) lease() time.Duration {
	if b.Lease > 0 {
		return b.Lease
	}
	return 2 * time.Minute
}

func (b *Broker) owner() string {
	if b.Owner == "" {
		return "local"
	}
	return b.Owner
}

func (b *Broker) logger() *slog.Logger {
	if b.Logger == nil {
		return slog.Default().With("system", "broker")
	}
	return b.Logger
}

var idEncoding = base32.NewEncoding("abcdefghijkmnpqrstuvwxyz23456789").WithPadding(base32.NoPadding)

// NewID returns a random request id: 12 characters, 60 bits.
func NewID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])[:12]
}

// SubmitInput is what a requester asks for.
type SubmitInput struct {
	Resource string
	Role     string
	Duration time.Duration
	Reason   string
	Ticket   string
	// StartAt schedules the window to start later; zero means now.
	StartAt time.Time
	// Inputs are the requester's inputs for the connector, such as an SSH
	// public key.
	Inputs map[string]string
	// ClientIP is the address the request came from, if known.
	ClientIP string
	// Device names the device the request is made from, if any.
	Device string
}

// Limits on the requester's inputs.
const (
	maxInputs     = 8
	maxInputBytes = 16 << 10
)

// checkInputs refuses inputs the resource's connector does not take.
func (b *Broker) checkInputs(res *lapse.Resource, role *lapse.Role, inputs map[string]string) error {
	if len(inputs) == 0 {
		return nil
	}
	if len(inputs) > maxInputs {
		return lapse.Invalidf("at most %d inputs, got %d", maxInputs, len(inputs))
	}
	for k, v := range inputs {
		if len(v) > maxInputBytes {
			return lapse.Invalidf("input %q is %d bytes long; the limit is %d", k, len(v), maxInputBytes)
		}
	}
	c, settings, err := b.Target(res.Name, role.Name)
	if err != nil {
		return err
	}
	v, ok := c.(lapse.InputValidator)
	if !ok {
		return lapse.Invalidf("resource %s takes no inputs", res.Name)
	}
	return v.ValidateInputs(inputs, settings)
}

// MaxReasonLen bounds reasons, tickets and comments.
const MaxReasonLen = 1000

func checkText(name, s string, required bool) error {
	s = strings.TrimSpace(s)
	switch {
	case required && s == "":
		return lapse.Invalidf("a %s is required", name)
	case len(s) > MaxReasonLen:
		return lapse.Invalidf("%s is %d bytes long; the limit is %d", name, len(s), MaxReasonLen)
	}
	return nil
}

func decisionData(d lapse.Decision) map[string]any {
	return map[string]any{"allow": d.Allow, "policies": d.Policies, "reasons": d.Reasons}
}

func denial(d lapse.Decision, what string) error {
	if d.StepUp > 0 {
		return &lapse.StepUpError{MaxAge: d.StepUp, Policies: d.Policies, Reasons: d.Reasons}
	}
	return lapse.Forbiddenf("%s denied by %s: %s", what, strings.Join(d.Policies, ", "), strings.Join(d.Reasons, "; "))
}

// Submit creates a request. An auto-approved request whose window starts now
// is provisioned before Submit returns, and its credentials are in the
// result.
func (b *Broker) Submit(ctx context.Context, p lapse.Principal, in SubmitInput) (Result, error) {
	now := b.now()
	res, role, err := b.Catalog.Lookup(in.Resource, in.Role)
	if err != nil {
		return Result{}, err
	}
	if in.Duration <= 0 {
		return Result{}, lapse.Invalidf("duration must be positive, got %s", in.Duration)
	}
	if role.MaxDuration > 0 && in.Duration > role.MaxDuration {
		return Result{}, lapse.Invalidf("duration %s exceeds the maximum of %s for role %s on %s", in.Duration, role.MaxDuration, role.Name, res.Name)
	}
	if err := checkText("reason", in.Reason, true); err != nil {
		return Result{}, err
	}
	if err := checkText("ticket", in.Ticket, false); err != nil {
		return Result{}, err
	}
	if err := b.checkInputs(res, role, in.Inputs); err != nil {
		return Result{}, err
	}
	maxDelay := b.MaxStartDelay
	if maxDelay <= 0 {
		maxDelay = 30 * 24 * time.Hour
	}
	if in.StartAt.After(now.Add(maxDelay)) {
		return Result{}, lapse.Invalidf("start %s is more than %s ahead", in.StartAt.Format(time.RFC3339), maxDelay)
	}
	din := lapse.DecisionInput{Action: lapse.PolicyRequest, Principal: p, Resource: res, Role: role,
		Duration: in.Duration, Reason: in.Reason, Ticket: in.Ticket, Now: now}
	var registered bool
	din.Signals, registered = b.signalsWith(ctx, p.MFA, p.Name, in.Device, in.ClientIP, now)
	if in.Device != "" && !registered {
		return Result{}, lapse.Invalidf("unknown device %q: no device management integration has reported it", in.Device)
	}
	d := b.Decider.Decide(din)
	if !d.Allow {
		b.refused(ctx, p, in, d, now)
		return Result{Decision: &d}, denial(d, "request")
	}
	din.Action = lapse.PolicyAutoApprove
	auto := b.Decider.Decide(din)
	needed := 0
	if !auto.Allow {
		needed = max(auto.Approvals, 1)
	}
	ttl := b.PendingTTL
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	r, err := lapse.NewRequest(lapse.Request{
		ID: NewID(), User: p.Name, Resource: res.Name, Role: role.Name,
		Reason: strings.TrimSpace(in.Reason), Ticket: strings.TrimSpace(in.Ticket), Duration: in.Duration, StartAt: in.StartAt,
		Inputs: in.Inputs, ClientIP: in.ClientIP, Device: in.Device,
	}, needed, ttl, now)
	if err != nil {
		return Result{}, err
	}
	claim := r.State == lapse.StateApproved && r.Due(now)
	if claim {
		if r, err = r.Claim(b.owner(), now, b.lease()); err != nil {
			return Result{}, err
		}
	}
	err = b.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.CreateRequest(ctx, &r); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvRequested, p.Name, "", r, map[string]any{
			"reason": r.Reason, "ticket": r.Ticket, "duration": r.Duration.String(), "start_at": r.StartAt,
			"decision": decisionData(d), "auto_approve": decisionData(auto), "approvals_needed": needed,
		}, now))
	})
	if err != nil {
		return Result{}, fmt.Errorf("store request: %w", err)
	}
	b.Executor.Notify()
	if !claim {
		return Result{Request: r, Decision: &d}, nil
	}
	out, err := b.execute(ctx, r, true)
	out.Decision = &d
	return out, err
}

// refused records a request that policy refused. Nothing else is stored.
func (b *Broker) refused(ctx context.Context, p lapse.Principal, in SubmitInput, d lapse.Decision, now time.Time) {
	r := lapse.Request{User: p.Name, Resource: in.Resource, Role: in.Role}
	b.auditRefusal(ctx, p, lapse.EvRefused, r, d, map[string]any{"reason": in.Reason, "duration": in.Duration.String()})
}

// auditRefusal records that policy refused p an action on r. Nothing else
// changes, so the record stands alone in its transaction.
func (b *Broker) auditRefusal(ctx context.Context, p lapse.Principal, typ string, r lapse.Request, d lapse.Decision, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	data["decision"] = decisionData(d)
	ev := lapse.NewAuditEvent(typ, p.Name, "", r, data, b.now())
	ev.To = ""
	if err := b.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.AppendAudit(ctx, ev) }); err != nil {
		b.logger().Error("record a refusal", "type", typ, "user", p.Name, "err", err)
	}
}

// lookup returns the request and its resource and role.
func (b *Broker) lookup(ctx context.Context, id string) (lapse.Request, *lapse.Resource, *lapse.Role, error) {
	r, err := b.Store.GetRequest(ctx, id)
	if err != nil {
		return lapse.Request{}, nil, nil, err
	}
	res, role := b.resolve(r)
	return r, res, role, nil
}

// resolve returns r's resource and role from the catalog. A resource that
// left the configuration is named without settings, so that its requests
// stay reachable for reads and revocation; no policy permits anything on it.
func (b *Broker) resolve(r lapse.Request) (*lapse.Resource, *lapse.Role) {
	res, role, err := b.Catalog.Lookup(r.Resource, r.Role)
	if err != nil {
		return &lapse.Resource{Name: r.Resource}, &lapse.Role{Name: r.Role}
	}
	return res, role
}

// MayDecide reports whether p may approve or deny r: an approver that
// policy allows for it, or an admin (who may deny anything), never its
// requester. Auditors read requests but decide nothing.
func (b *Broker) MayDecide(p lapse.Principal, r lapse.Request) bool {
	if p.Name == r.User {
		return false
	}
	res, role := b.resolve(r)
	return p.Admin || b.mayApprove(p, r, res, role).Allow
}

// mayApprove reports whether p may approve or deny r.
func (b *Broker) mayApprove(p lapse.Principal, r lapse.Request, res *lapse.Resource, role *lapse.Role) lapse.Decision {
	return b.Decider.Decide(lapse.DecisionInput{Action: lapse.PolicyApprove, Principal: p, Resource: res, Role: role,
		Duration: r.Duration, Reason: r.Reason, Ticket: r.Ticket, Request: &r, Now: b.now()})
}

// update runs fn on the current request in a transaction and stores its
// result with the audit event fn returns.
func (b *Broker) update(ctx context.Context, id string, fn func(r lapse.Request, now time.Time) (lapse.Request, *lapse.AuditEvent, error)) (lapse.Request, error) {
	return b.updateTx(ctx, id, func(_ lapse.Tx, r lapse.Request, now time.Time) (lapse.Request, *lapse.AuditEvent, error) {
		return fn(r, now)
	})
}

// updateTx is update with the transaction at hand, for changes that store
// more than the request.
func (b *Broker) updateTx(ctx context.Context, id string, fn func(tx lapse.Tx, r lapse.Request, now time.Time) (lapse.Request, *lapse.AuditEvent, error)) (lapse.Request, error) {
	var out lapse.Request
	err := b.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		r, err := tx.GetRequest(ctx, id)
		if err != nil {
			return err
		}
		now := b.now()
		next, ev, err := fn(tx, r, now)
		if err != nil {
			return err
		}
		if err := tx.UpdateRequest(ctx, &next); err != nil {
			return err
		}
		if ev != nil {
			if err := tx.AppendAudit(ctx, *ev); err != nil {
				return err
			}
		}
		out = next
		return nil
	})
	if err != nil {
		return lapse.Request{}, err
	}
	b.Executor.Notify()
	return out, nil
}

// Approve records p's approval. The approval that completes a request
// provisions it (credentials wait sealed for the requester); the one that
// completes an extension moves the expiry in the target and in the store.
func (b *Broker) Approve(ctx context.Context, p lapse.Principal, id, comment string) (Result, error) {
	if err := checkText("comment", comment, false); err != nil {
		return Result{}, err
	}
	r, res, role, err := b.lookup(ctx, id)
	if err != nil {
		return Result{}, err
	}
	if p.Name == r.User {
		return Result{}, lapse.Forbiddenf("%s cannot approve their own request", p.Name)
	}
	d := b.mayApprove(p, r, res, role)
	if !d.Allow {
		b.auditRefusal(ctx, p, lapse.EvApprovalRefused, r, d, nil)
		return Result{Decision: &d}, denial(d, "approval")
	}
	if r.State == lapse.StateActive {
		return b.approveExtension(ctx, p, r, res, role, comment, d)
	}
	claimed := false
	out, err := b.update(ctx, id, func(r lapse.Request, now time.Time) (lapse.Request, *lapse.AuditEvent, error) {
		next, err := b.approve(r, p, comment, res, role, now)
		if err != nil {
			return next, nil, err
		}
		typ := lapse.EvApprovalAdded
		if next.State == lapse.StateApproved {
			typ = lapse.EvApproved
			if next.Due(now) {
				if next, err = next.Claim(b.owner(), now, b.lease()); err != nil {
					return next, nil, err
				}
				claimed = true
			}
		}
		ev := lapse.NewAuditEvent(typ, p.Name, r.State, next, map[string]any{
			"comment": comment, "approvals": len(next.Approvals), "approvals_needed": next.ApprovalsNeeded, "decision": decisionData(d)}, now)
		return next, &ev, nil
	})
	if err != nil {
		return Result{}, err
	}
	if claimed {
		res, err := b.execute(ctx, out, false)
		res.Decision = &d
		return res, err
	}
	return Result{Request: out, Decision: &d}, nil
}

func (b *Broker) approveExtension(ctx context.Context, p lapse.Principal, r lapse.Request, res *lapse.Resource, role *lapse.Role, comment string, d lapse.Decision) (Result, error) {
	now := b.now()
	tentative, err := b.approve(r, p, comment, res, role, now)
	if err != nil {
		return Result{}, err
	}
	var sealed []byte
	if tentative.ExtensionApproved() {
		// Move the expiry in the target first: if the store then refuses,
		// the target holds a later expiry than Lapse, and Lapse still
		// revokes at the earlier one.
		creds, err := b.extendTarget(ctx, tentative)
		if err != nil {
			return Result{}, err
		}
		if creds != nil {
			if sealed, err = lapse.SealCredentials(b.Sealer, r.ID, creds); err != nil {
				return Result{}, err
			}
		}
	}
	out, err := b.updateTx(ctx, r.ID, func(tx lapse.Tx, cur lapse.Request, now time.Time) (lapse.Request, *lapse.AuditEvent, error) {
		if cur.Version != r.Version {
			return cur, nil, lapse.Conflictf("request %s changed meanwhile; try again", r.ID)
		}
		next, err := b.approve(cur, p, comment, res, role, now)
		if err != nil {
			return next, nil, err
		}
		data := map[string]any{"comment": comment, "extension": next.Extension, "decision": decisionData(d)}
		typ := lapse.EvApprovalAdded
		if next.ExtensionApproved() {
			data["old_expires_at"] = next.ExpiresAt
			if next, err = next.ApplyExtension(now); err != nil {
				return next, nil, err
			}
			data["expires_at"] = next.ExpiresAt
			typ = lapse.EvExtended
			if sealed != nil {
				// The requester fetches the new credentials once.
				if err := tx.PutSecret(ctx, next.ID, sealed); err != nil {
					return next, nil, err
				}
				next.CredentialsWaiting = true
			}
		}
		ev := lapse.NewAuditEvent(typ, p.Name, cur.State, next, data, now)
		return next, &ev, nil
	})
	if err != nil {
		return Result{}, err
	}
	return Result{Request: out, Decision: &d}, nil
}

// approve adds p's approval to r after dropping the approvals that the
// policy in force no longer accepts (an approver group changed, say), so
// that only approvals valid now count. It records p's groups with the
// approval for the same check later.
func (b *Broker) approve(r lapse.Request, p lapse.Principal, comment string, res *lapse.Resource, role *lapse.Role, now time.Time) (lapse.Request, error) {
	r = r.KeepApprovals(func(a lapse.Approval) bool {
		return b.mayApprove(lapse.Principal{Name: a.By, Groups: a.Groups}, r, res, role).Allow
	})
	next, err := r.Approve(p.Name, comment, now)
	if err != nil {
		return next, err
	}
	return next.WithApprover(p.Name, p.Groups), nil
}

// extendTarget moves the expiry of r's access in the target to the expiry
// its approved extension gives.
func (b *Broker) extendTarget(ctx context.Context, r lapse.Request) (*lapse.Credentials, error) {
	c, settings, err := b.Target(r.Resource, r.Role)
	if err != nil {
		return nil, err
	}
	timeout := b.CallTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	g := r.Grant(r.ExtendedExpiry(), settings)
	creds, err := c.Extend(ctx, g)
	if err != nil {
		return nil, fmt.Errorf("extend in target: %w", err)
	}
	return creds, nil
}

// Deny refuses a pending request, or a pending extension.
func (b *Broker) Deny(ctx context.Context, p lapse.Principal, id, reason string) (Result, error) {
	if err := checkText("reason", reason, true); err != nil {
		return Result{}, err
	}
	r, res, role, err := b.lookup(ctx, id)
	if err != nil {
		return Result{}, err
	}
	if p.Name == r.User {
		return Result{}, lapse.Forbiddenf("%s cannot decide on their own request; cancel it instead", p.Name)
	}
	d := b.mayApprove(p, r, res, role)
	if !d.Allow && !p.Admin {
		b.auditRefusal(ctx, p, lapse.EvApprovalRefused, r, d, map[string]any{"action": "deny"})
		return Result{Decision: &d}, denial(d, "denial")
	}
	out, err := b.update(ctx, id, func(r lapse.Request, now time.Time) (lapse.Request, *lapse.AuditEvent, error) {
		next, err := r.Deny(p.Name, reason, now)
		if err != nil {
			return next, nil, err
		}
		typ := lapse.EvDenied
		if next.State == lapse.StateActive {
			typ = lapse.EvExtensionDenied
		}
		ev := lapse.NewAuditEvent(typ, p.Name, r.State, next, map[string]any{"reason": reason}, now)
		return next, &ev, nil
	})
	return Result{Request: out, Decision: &d}, err
}

// Cancel withdraws a request that is not active yet. Only its requester or
// an admin may.
func (b *Broker) Cancel(ctx context.Context, p lapse.Principal, id string) (Result, error) {
	r, err := b.Store.GetRequest(ctx, id)
	if err != nil {
		return Result{}, err
	}
	if r.User != p.Name && !p.Admin {
		return Result{}, lapse.Forbiddenf("only %s or an admin may cancel request %s", r.User, id)
	}
	out, err := b.update(ctx, id, func(r lapse.Request, now time.Time) (lapse.Request, *lapse.AuditEvent, error) {
		next, err := r.Cancel(p.Name, "", now)
		if err != nil {
			return next, nil, err
		}
		ev := lapse.NewAuditEvent(lapse.EvCancelled, p.Name, r.State, next, nil, now)
		return next, &ev, nil
	})
	// A provisioning that may be running removes what it created when it
	// finds the request cancelled; the reconciliation sweep backs that up.
	return Result{Request: out}, err
}

// Release ends the requester's own grant early and revokes it at once.
func (b *Broker) Release(ctx context.Context, p lapse.Principal, id string) (Result, error) {
	r, err := b.Store.GetRequest(ctx, id)
	if err != nil {
		return Result{}, err
	}
	if r.User != p.Name {
		return Result{}, lapse.Forbiddenf("only %s may release request %s; admins revoke", r.User, id)
	}
	return b.end(ctx, id, func(r lapse.Request, now time.Time) (lapse.Request, lapse.AuditEvent, error) {
		next, err := r.Release(p.Name, now)
		return next, lapse.NewAuditEvent(lapse.EvReleased, p.Name, r.State, next, nil, now), err
	})
}

// Revoke ends a grant by decision of an admin (or of its own requester),
// with a reason, and revokes it at once.
func (b *Broker) Revoke(ctx context.Context, p lapse.Principal, id, reason string) (Result, error) {
	if err := checkText("reason", reason, true); err != nil {
		return Result{}, err
	}
	r, err := b.Store.GetRequest(ctx, id)
	if err != nil {
		return Result{}, err
	}
	if r.User != p.Name && !p.Admin {
		return Result{}, lapse.Forbiddenf("only an admin may revoke another user's access")
	}
	return b.end(ctx, id, func(r lapse.Request, now time.Time) (lapse.Request, lapse.AuditEvent, error) {
		next, err := r.Revoke(p.Name, reason, now)
		return next, lapse.NewAuditEvent(lapse.EvRevoked, p.Name, r.State, next, map[string]any{"reason": reason}, now), err
	})
}

// end moves a request to revoking, claims it, and runs the revocation.
// When the target does not confirm, the request stays revoking and the
// scheduler retries; the result shows that.
func (b *Broker) end(ctx context.Context, id string, fn func(r lapse.Request, now time.Time) (lapse.Request, lapse.AuditEvent, error)) (Result, error) {
	out, err := b.update(ctx, id, func(r lapse.Request, now time.Time) (lapse.Request, *lapse.AuditEvent, error) {
		next, ev, err := fn(r, now)
		if err != nil {
			return next, nil, err
		}
		if next, err = next.Claim(b.owner(), now, b.lease()); err != nil {
			return next, nil, err
		}
		return next, &ev, nil
	})
	if err != nil {
		return Result{}, err
	}
	return b.execute(ctx, out, false)
}

// execute runs the connector step of a request this broker has claimed.
// The step is not tied to the caller's request: a client that goes away
// does not leave a claimed step half done. If recording its outcome fails,
// the result is the request as claimed, and the scheduler takes the step
// over when the claim lapses.
func (b *Broker) execute(ctx context.Context, claimed lapse.Request, deliver bool) (Result, error) {
	timeout := b.CallTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 4*timeout)
	defer cancel()
	out, creds, err := b.Executor.Execute(ctx, claimed, deliver)
	if err != nil {
		b.logger().Error("record connector step", "request", claimed.ID, "err", err)
		return Result{Request: claimed}, nil
	}
	return Result{Request: out, Credentials: creds}, nil
}

// Extend asks for more time on the requester's active grant. Policy and
// approvals apply as for a new request; with no approvals needed the expiry
// moves at once and fresh credentials, if the connector issues any, are in
// the result.
func (b *Broker) Extend(ctx context.Context, p lapse.Principal, id string, d time.Duration, reason string) (Result, error) {
	if err := checkText("reason", reason, true); err != nil {
		return Result{}, err
	}
	if d <= 0 {
		return Result{}, lapse.Invalidf("duration must be positive, got %s", d)
	}
	r, res, role, err := b.lookup(ctx, id)
	if err != nil {
		return Result{}, err
	}
	if r.User != p.Name {
		return Result{}, lapse.Forbiddenf("only %s may extend request %s", r.User, id)
	}
	if role.MaxDuration > 0 && d > role.MaxDuration {
		return Result{}, lapse.Invalidf("extension %s exceeds the maximum of %s for role %s on %s", d, role.MaxDuration, role.Name, res.Name)
	}
	now := b.now()
	sig, _ := b.signalsWith(ctx, p.MFA, p.Name, r.Device, r.ClientIP, now)
	din := lapse.DecisionInput{Action: lapse.PolicyExtend, Principal: p, Resource: res, Role: role, Duration: d, Reason: reason, Ticket: r.Ticket, Request: &r, Now: now,
		Signals: sig}
	dec := b.Decider.Decide(din)
	if !dec.Allow {
		b.auditRefusal(ctx, p, lapse.EvExtensionRefused, r, dec, map[string]any{"duration": d.String(), "reason": reason})
		return Result{Decision: &dec}, denial(dec, "extension")
	}
	din.Action = lapse.PolicyAutoApprove
	auto := b.Decider.Decide(din)
	needed := 0
	if !auto.Allow {
		needed = max(auto.Approvals, 1)
	}
	tentative, err := r.RequestExtension(d, reason, needed, now)
	if err != nil {
		return Result{}, err
	}
	var creds *lapse.Credentials
	if needed == 0 {
		if creds, err = b.extendTarget(ctx, tentative); err != nil {
			return Result{}, err
		}
	}
	out, err := b.update(ctx, id, func(cur lapse.Request, now time.Time) (lapse.Request, *lapse.AuditEvent, error) {
		if cur.Version != r.Version {
			return cur, nil, lapse.Conflictf("request %s changed meanwhile; try again", id)
		}
		next, err := cur.RequestExtension(d, reason, needed, now)
		if err != nil {
			return next, nil, err
		}
		data := map[string]any{"duration": d.String(), "reason": reason, "approvals_needed": needed, "decision": decisionData(dec)}
		typ := lapse.EvExtendRequested
		if needed == 0 {
			data["old_expires_at"] = cur.ExpiresAt
			if next, err = next.ApplyExtension(now); err != nil {
				return next, nil, err
			}
			data["expires_at"] = next.ExpiresAt
			typ = lapse.EvExtended
		}
		ev := lapse.NewAuditEvent(typ, p.Name, cur.State, next, data, now)
		return next, &ev, nil
	})
	if err != nil {
		return Result{}, err
	}
	return Result{Request: out, Credentials: creds, Decision: &dec}, nil
}

// Get returns a request that p may see: their own, one they may approve, or
// any for an admin.
func (b *Broker) Get(ctx context.Context, p lapse.Principal, id string) (lapse.Request, error) {
	r, res, role, err := b.lookup(ctx, id)
	if err != nil {
		return lapse.Request{}, err
	}
	if !b.visible(p, r, res, role) {
		return lapse.Request{}, lapse.Forbiddenf("%s may not see request %s", p.Name, id)
	}
	return r, nil
}

func (b *Broker) visible(p lapse.Principal, r lapse.Request, res *lapse.Resource, role *lapse.Role) bool {
	return p.ReadsAll() || r.User == p.Name || b.mayApprove(p, r, res, role).Allow
}

// ListInput selects requests for [Broker.List].
type ListInput struct {
	// States filters by state; empty means all.
	States []lapse.State
	// Mine keeps p's own requests.
	Mine bool
	// ToApprove keeps requests waiting for p's approval.
	ToApprove bool
	Limit     int
}

// List returns the requests p may see that match in, newest first. For an
// admin that is every request; for anyone else, their own requests and
// those waiting for their decision.
func (b *Broker) List(ctx context.Context, p lapse.Principal, in ListInput) ([]lapse.Request, error) {
	for _, s := range in.States {
		if !s.Valid() {
			return nil, lapse.Invalidf("unknown state %q", s)
		}
	}
	if !p.ReadsAll() && !in.Mine && !in.ToApprove {
		// Filter in the store before its limit, so that others' newer
		// requests never push one's own out of the page.
		mine, err := b.List(ctx, p, ListInput{States: in.States, Mine: true, Limit: in.Limit})
		if err != nil {
			return nil, err
		}
		queue, err := b.List(ctx, p, ListInput{States: in.States, ToApprove: true, Limit: in.Limit})
		if err != nil {
			return nil, err
		}
		out := append(mine, queue...)
		slices.SortFunc(out, func(a, b lapse.Request) int { return b.CreatedAt.Compare(a.CreatedAt) })
		if in.Limit > 0 && len(out) > in.Limit {
			out = out[:in.Limit]
		}
		return out, nil
	}
	f := lapse.RequestFilter{States: in.States, Limit: in.Limit}
	if in.Mine {
		f.User = p.Name
	}
	if in.ToApprove {
		f.Approver = p.Name
		if len(f.States) == 0 {
			f.States = []lapse.State{lapse.StatePending, lapse.StateActive}
		}
	}
	rs, err := b.Store.ListRequests(ctx, f)
	if err != nil {
		return nil, err
	}
	out := rs[:0]
	for _, r := range rs {
		res, role := b.resolve(r)
		if in.ToApprove {
			if r.State == lapse.StateActive && r.Extension == nil {
				continue
			}
			if r.User == p.Name || !b.mayApprove(p, r, res, role).Allow {
				continue
			}
		} else if !b.visible(p, r, res, role) {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// TakeCredentials hands the requester the credentials waiting for them,
// once. Nobody else, admins included, may take them.
func (b *Broker) TakeCredentials(ctx context.Context, p lapse.Principal, id string) (*lapse.Credentials, error) {
	var creds *lapse.Credentials
	err := b.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		r, err := tx.GetRequest(ctx, id)
		if err != nil {
			return err
		}
		if r.User != p.Name {
			return lapse.Forbiddenf("credentials of request %s are for %s only", id, r.User)
		}
		if r.State != lapse.StateActive {
			return fmt.Errorf("request %s is %s; its credentials are no longer handed out: %w", id, r.State, lapse.ErrGone)
		}
		if !r.CredentialsWaiting {
			return fmt.Errorf("request %s has no credentials waiting (they are handed out once): %w", id, lapse.ErrGone)
		}
		sealed, err := tx.TakeSecret(ctx, id)
		if errors.Is(err, lapse.ErrNotFound) {
			return fmt.Errorf("request %s has no credentials waiting: %w", id, lapse.ErrGone)
		}
		if err != nil {
			return err
		}
		// Open before committing: credentials that cannot be read are not
		// recorded as handed out.
		if creds, err = lapse.OpenCredentials(b.Sealer, id, sealed); err != nil {
			return err
		}
		now := b.now()
		next := r
		next.CredentialsWaiting = false
		if err := tx.UpdateRequest(ctx, &next); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvCredentialsTaken, p.Name, r.State, next, nil, now))
	})
	if err != nil {
		return nil, err
	}
	return creds, nil
}

// Check reports whether user holds role on resource right now, and by
// which grant.
func (b *Broker) Check(ctx context.Context, user, resource, role string) (lapse.Grant, bool, error) {
	g, err := b.Store.ActiveGrant(ctx, user, resource, role, b.now())
	if errors.Is(err, lapse.ErrNotFound) {
		return lapse.Grant{}, false, nil
	}
	if err != nil {
		return lapse.Grant{}, false, err
	}
	return g, true, nil
}

// CheckGrant reports whether the grant with id is active right now.
func (b *Broker) CheckGrant(ctx context.Context, id string) (lapse.Request, bool, error) {
	r, err := b.Store.GetRequest(ctx, id)
	if errors.Is(err, lapse.ErrNotFound) {
		return lapse.Request{}, false, nil
	}
	if err != nil {
		return lapse.Request{}, false, err
	}
	return r, r.Active(b.now()), nil
}

// Audit returns audit events p may read: all for admins and auditors,
// else the events about p.
func (b *Broker) Audit(ctx context.Context, p lapse.Principal, f lapse.AuditFilter) ([]lapse.AuditEvent, error) {
	if !p.ReadsAll() {
		if f.User != "" && f.User != p.Name {
			return nil, lapse.Forbiddenf("only admins and auditors may read other users' audit records")
		}
		f.User = p.Name
	}
	return b.Store.ListAudit(ctx, f)
}

// VerifyAudit checks the whole audit chain and returns how many records it
// holds and the hash of the last one.
func (b *Broker) VerifyAudit(ctx context.Context) (int64, string, error) {
	var v lapse.ChainVerifier
	if err := b.Store.ScanAudit(ctx, v.Add); err != nil {
		return v.Count, v.Head(), err
	}
	return v.Count, v.Head(), nil
}

// Resources returns the resources and roles, for listing.
func (b *Broker) Resources() []lapse.Resource {
	return slices.Clone(b.Catalog.Resources)
}

// ReportPosture records a device's posture reported by an integration, and
// then re-evaluates the active grants requested from that device: a grant
// that policy no longer permits is revoked.
func (b *Broker) ReportPosture(ctx context.Context, integration string, d lapse.Device) (lapse.Device, int, error) {
	if d.ID == "" || len(d.ID) > 128 {
		return lapse.Device{}, 0, lapse.Invalidf("device id must be 1 to 128 bytes")
	}
	now := b.now()
	if d.ReportedAt.IsZero() || d.ReportedAt.After(now) {
		d.ReportedAt = now
	}
	d.Source = integration
	err := b.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.PutDevice(ctx, d); err != nil {
			return err
		}
		ev := lapse.NewAuditEvent(lapse.EvDevicePosture, integration, "", lapse.Request{User: d.Owner}, d, now)
		ev.To = ""
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return lapse.Device{}, 0, err
	}
	n, err := b.Reevaluate(ctx, func(r lapse.Request) bool { return r.Device == d.ID })
	return d, n, err
}

// Reevaluate asks policy again about every active grant that match
// selects (all when nil), with the signals known now, and revokes those
// that policy no longer permits, naming the deciding policies. It returns
// how many it revoked.
func (b *Broker) Reevaluate(ctx context.Context, match func(lapse.Request) bool) (int, error) {
	rs, err := b.Store.ListRequests(ctx, lapse.RequestFilter{States: []lapse.State{lapse.StateActive}, Limit: 1 << 20})
	if err != nil {
		return 0, err
	}
	revoked := 0
	system := lapse.Principal{Name: "lapse", Admin: true}
	for _, r := range rs {
		now := b.now()
		// A grant past its expiry is the scheduler's to end, as expired.
		if (match != nil && !match(r)) || !r.Active(now) {
			continue
		}
		res, role, err := b.Catalog.Lookup(r.Resource, r.Role)
		if err != nil {
			continue
		}
		sig, _ := b.signals(ctx, r.User, r.Device, r.ClientIP, now)
		d := b.Decider.Decide(lapse.DecisionInput{Action: lapse.PolicyRequest,
			Principal: b.principalOf(ctx, r), Resource: res, Role: role, Duration: r.ExpiresAt.Sub(now),
			Reason: r.Reason, Ticket: r.Ticket, Request: &r, Now: now, Signals: sig})
		// A step-up requirement is about the moment of asking: a grant is
		// not taken away because the sign-in behind it grows old.
		if d.Allow || d.StepUp > 0 {
			continue
		}
		reason := "no longer permitted: " + strings.Join(d.Reasons, "; ")
		if _, err := b.Revoke(ctx, system, r.ID, reason); err != nil {
			if errors.Is(err, lapse.ErrConflict) {
				continue // ended meanwhile
			}
			b.logger().Error("revoke a grant no longer permitted", "request", r.ID, "err", err)
			continue
		}
		revoked++
	}
	return revoked, nil
}

// principalOf is the requester of r as policy sees them now.
func (b *Broker) principalOf(ctx context.Context, r lapse.Request) lapse.Principal {
	if b.Directory != nil {
		if p, ok := b.Directory(ctx, r.User); ok {
			return p
		}
	}
	return lapse.Principal{Name: r.User}
}
