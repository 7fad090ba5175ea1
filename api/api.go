// Package api holds the JSON objects of Lapse's HTTP API, shared by the
// server and the client. They are the objects `-o json` prints.
package api

import (
	"time"

	"github.com/lapse-access/lapse"
)

// Request is an access request as the API shows it. It never carries
// secrets except Credentials, which is set once, for the requester.
type Request struct {
	ID              string             `json:"id"`
	User            string             `json:"user"`
	Resource        string             `json:"resource"`
	Role            string             `json:"role"`
	Reason          string             `json:"reason"`
	Ticket          string             `json:"ticket,omitempty"`
	State           lapse.State        `json:"state"`
	Duration        string             `json:"duration"`
	DurationSeconds float64            `json:"duration_seconds"`
	StartAt         *time.Time         `json:"start_at,omitempty"`
	CreatedAt       time.Time          `json:"created_at"`
	PendingUntil    *time.Time         `json:"pending_until,omitempty"`
	ApprovalsNeeded int                `json:"approvals_needed"`
	Approvals       []lapse.Approval   `json:"approvals"`
	ActivatedAt     *time.Time         `json:"activated_at,omitempty"`
	ExpiresAt       *time.Time         `json:"expires_at,omitempty"`
	EndedAt         *time.Time         `json:"ended_at,omitempty"`
	EndReason       lapse.EndReason    `json:"end_reason,omitempty"`
	EndedBy         string             `json:"ended_by,omitempty"`
	Note            string             `json:"note,omitempty"`
	Extension       *lapse.Extension   `json:"extension,omitempty"`
	Ref             string             `json:"ref,omitempty"`
	Inputs          map[string]string  `json:"inputs,omitempty"`
	ClientIP        string             `json:"client_ip,omitempty"`
	Device          string             `json:"device,omitempty"`
	Outputs         map[string]string  `json:"outputs,omitempty"`
	Attempts        int                `json:"attempts,omitempty"`
	LastError       string             `json:"last_error,omitempty"`
	CredsWaiting    bool               `json:"credentials_waiting"`
	Credentials     *lapse.Credentials `json:"credentials,omitempty"`
	Decision        *Decision          `json:"decision,omitempty"`
}

// Decision is a policy decision as the API shows it.
type Decision struct {
	Allow    bool     `json:"allow"`
	Policies []string `json:"policies"`
	Reasons  []string `json:"reasons"`
}

func ptr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// FromRequest converts a stored request for the API.
func FromRequest(r lapse.Request) Request {
	out := Request{
		ID: r.ID, User: r.User, Resource: r.Resource, Role: r.Role, Reason: r.Reason, Ticket: r.Ticket,
		State: r.State, Duration: r.Duration.String(), DurationSeconds: r.Duration.Seconds(),
		StartAt: ptr(r.StartAt), CreatedAt: r.CreatedAt.UTC(), ApprovalsNeeded: r.ApprovalsNeeded,
		Approvals: r.Approvals, ActivatedAt: ptr(r.ActivatedAt), ExpiresAt: ptr(r.ExpiresAt), EndedAt: ptr(r.EndedAt),
		EndReason: r.EndReason, EndedBy: r.EndedBy, Note: r.Note, Extension: r.Extension, Ref: r.Ref,
		Inputs: r.Inputs, Outputs: r.Outputs, ClientIP: r.ClientIP, Device: r.Device,
		LastError: r.LastError, CredsWaiting: r.CredentialsWaiting,
	}
	if r.State == lapse.StatePending {
		out.PendingUntil = ptr(r.PendingUntil)
	}
	if r.State == lapse.StateApproved || r.State == lapse.StateRevoking {
		out.Attempts = r.Attempts
	}
	if out.Approvals == nil {
		out.Approvals = []lapse.Approval{}
	}
	return out
}

// FromDecision converts a decision for the API; nil stays nil.
func FromDecision(d *lapse.Decision) *Decision {
	if d == nil {
		return nil
	}
	return &Decision{Allow: d.Allow, Policies: d.Policies, Reasons: d.Reasons}
}

// SubmitRequest is the body of POST /v1/requests.
type SubmitRequest struct {
	Resource string `json:"resource"`
	Role     string `json:"role"`
	// Duration is a Go duration ("90m", "4h") or whole days ("2d").
	Duration string `json:"duration"`
	Reason   string `json:"reason"`
	Ticket   string `json:"ticket,omitempty"`
	// StartAt schedules the window (RFC 3339); empty means now.
	StartAt string `json:"start_at,omitempty"`
	// Inputs are inputs for the resource's connector, such as
	// {"ssh_public_key": "ssh-ed25519 AAAA..."}.
	Inputs map[string]string `json:"inputs,omitempty"`
	// Device names the device the request is made from, as the device
	// management integration reports it.
	Device string `json:"device,omitempty"`
}

// CommentBody is the body of approve.
type CommentBody struct {
	Comment string `json:"comment,omitempty"`
}

// ReasonBody is the body of deny and revoke.
type ReasonBody struct {
	Reason string `json:"reason"`
}

// ExtendBody is the body of extend.
type ExtendBody struct {
	Duration string `json:"duration"`
	Reason   string `json:"reason"`
}

// CheckRequest is the body of POST /v1/check: either a user, resource and
// role, or a Lapse-issued token.
type CheckRequest struct {
	User     string `json:"user,omitempty"`
	Resource string `json:"resource,omitempty"`
	Role     string `json:"role,omitempty"`
	Token    string `json:"token,omitempty"`
}

// CheckResponse says whether access is active now.
type CheckResponse struct {
	Active    bool       `json:"active"`
	RequestID string     `json:"request_id,omitempty"`
	User      string     `json:"user,omitempty"`
	Resource  string     `json:"resource,omitempty"`
	Role      string     `json:"role,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// Reason says why a token was refused.
	Reason string `json:"reason,omitempty"`
}

// Resource is a resource as GET /v1/resources lists it.
type Resource struct {
	Name        string   `json:"name"`
	Connector   string   `json:"connector"`
	Environment string   `json:"environment,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	Roles       []Role   `json:"roles"`
}

// Role is a role as GET /v1/resources lists it.
type Role struct {
	Name        string   `json:"name"`
	MaxDuration string   `json:"max_duration"`
	Approvals   int      `json:"approvals"`
	Approvers   []string `json:"approvers,omitempty"`
	Requesters  []string `json:"requesters,omitempty"`
}

// Whoami is the caller as Lapse sees them.
type Whoami struct {
	Name    string   `json:"name"`
	Groups  []string `json:"groups"`
	Admin   bool     `json:"admin"`
	Auditor bool     `json:"auditor,omitempty"`
	Service bool     `json:"service,omitempty"`
	// Session is the id of the sign-in session in use, if any.
	Session string `json:"session,omitempty"`
	// MFA says whether the session has a second factor, and MFAAgeSeconds
	// how long ago it was presented.
	MFA           bool   `json:"mfa,omitempty"`
	MFAAgeSeconds *int64 `json:"mfa_age_seconds,omitempty"`
}

// AuditPage is one page of audit events.
type AuditPage struct {
	Events []lapse.AuditEvent `json:"events"`
	// Next is the cursor for the following page; 0 when this is the last.
	Next int64 `json:"next,omitempty"`
}

// Verify is the result of verifying the audit log.
type Verify struct {
	OK      bool   `json:"ok"`
	Records int64  `json:"records"`
	Head    string `json:"head"`
	Error   string `json:"error,omitempty"`
	// BadRecord is the first record at which the chain breaks.
	BadRecord int64 `json:"bad_record,omitempty"`
	// Root is the Merkle tree's root hash after the last record.
	Root []byte `json:"root,omitempty"`
	// Checkpoints is how many signed checkpoints matched the records;
	// Signed is the size of the largest, which covers the records up to
	// it.
	Checkpoints int   `json:"checkpoints"`
	Signed      int64 `json:"signed"`
	// BadCheckpoint is the size of a checkpoint that does not verify.
	BadCheckpoint int64 `json:"bad_checkpoint,omitempty"`
}

// Error is the body of every error response.
type Error struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody says what went wrong.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// MaxAge is set with code step_up_required: sign in again with a
	// second factor at most this many seconds old, then retry.
	MaxAge int64 `json:"max_age,omitempty"`
	// LoginURL is where a browser signs in again for step-up.
	LoginURL string `json:"login_url,omitempty"`
}
