package lapse

import "time"

// PolicyAction is what a decision is asked about.
type PolicyAction string

// The actions policies decide on. Their names are part of the product's
// surface: admins write policies against them.
const (
	PolicyRequest     PolicyAction = "Request"
	PolicyAutoApprove PolicyAction = "AutoApprove"
	PolicyApprove     PolicyAction = "Approve"
	PolicyExtend      PolicyAction = "Extend"
)

// DecisionInput is everything a decision may look at.
type DecisionInput struct {
	Action    PolicyAction
	Principal Principal
	Resource  *Resource
	Role      *Role
	Duration  time.Duration
	Reason    string
	Ticket    string
	// Request is the request being approved or extended; nil for a new one.
	Request *Request
	Now     time.Time
	// Signals are the request's circumstances; the zero value means all
	// are unknown.
	Signals Signals
}

// Decision is the outcome of one policy decision.
type Decision struct {
	Allow bool
	// Approvals is how many human approvals the request needs when Action is
	// AutoApprove and Allow is false.
	Approvals int
	// Policies are the ids of the rules that determined the outcome.
	Policies []string
	// Reasons explain the outcome to a human.
	Reasons []string
	// Flags are labels the deciding policies attach to an allowed outcome
	// for the audit log, e.g. "break-glass".
	Flags []string
	// StepUp, when positive, says that the denial is lifted by a second
	// factor presented within StepUp: every policy that denied carries a
	// @step_up annotation, and StepUp is the shortest of them.
	StepUp time.Duration
}

// Decider decides by policy. Implementations deny by default and are pure:
// no I/O, safe for concurrent use.
type Decider interface {
	Decide(in DecisionInput) Decision
}
