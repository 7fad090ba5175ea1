package lapse

import "time"

// Audit event types of monitoring.
const (
	// EvAlertRaised records an anomaly alert: its data is the [Alert].
	EvAlertRaised = "alert.raised"
	// EvAlertAcknowledged records that an admin acknowledged an alert.
	EvAlertAcknowledged = "alert.acknowledged"
	// EvActivityOutside records activity reported for a user, resource and
	// role that no grant covered at the time it happened.
	EvActivityOutside = "activity.outside_grant"
)

// The states of an [Alert].
const (
	AlertOpen         = "open"
	AlertAcknowledged = "acknowledged"
)

// The severities of an [Alert], lowest first.
const (
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

// Severities lists the valid severities, lowest first.
var Severities = []string{SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}

// ValidSeverity reports whether s is one of [Severities].
func ValidSeverity(s string) bool {
	for _, v := range Severities {
		if v == s {
			return true
		}
	}
	return false
}

// Alert is an anomaly that a monitoring rule found. It is raised open and
// stays open until an admin acknowledges it; open alerts about a user add
// to the risk score of that user's requests.
type Alert struct {
	// ID numbers alerts from 1; assigned by the store.
	ID int64 `json:"id"`
	// Rule names the rule that raised it, e.g. "new_country".
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	State    string `json:"state"`
	// User, Resource, Role and RequestID say what it is about, where known.
	User      string `json:"user,omitempty"`
	Resource  string `json:"resource,omitempty"`
	Role      string `json:"role,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// Message says what was seen, for humans.
	Message string `json:"message"`
	// Details are the facts the rule looked at (never secrets).
	Details map[string]string `json:"details,omitempty"`
	// Revoke says that the rule revokes the grant it is about.
	Revoke   bool      `json:"revoke,omitempty"`
	RaisedAt time.Time `json:"raised_at"`
	AckedBy  string    `json:"acked_by,omitempty"`
	AckedAt  time.Time `json:"acked_at,omitzero"`
}

// The anomaly rules that alert on facts the risk score measures itself.
// The monitor raises their alerts and the risk score reads them, so the
// names live here.
const (
	// RuleUnusualHour: a request in an hour the user has not requested in.
	RuleUnusualHour = "unusual_hour"
	// RuleNewCountry: a request from a country the user has not requested
	// from.
	RuleNewCountry = "new_country"
	// RuleDenialBurst: many refused or denied requests of one user.
	RuleDenialBurst = "denial_burst"
)

// AlertFilter selects alerts. Zero fields match everything.
type AlertFilter struct {
	State    string
	Severity string
	User     string
	// AfterID returns alerts with a larger id (a cursor).
	AfterID int64
	// Limit caps the result; 0 means the store's default (1000).
	Limit int
}

// AlertEvent returns the audit event that records raising a, which must
// have its ID.
func AlertEvent(a Alert, actor string) AuditEvent {
	return NewAuditEvent(EvAlertRaised, actor, "", Request{ID: a.RequestID, User: a.User, Resource: a.Resource, Role: a.Role}, a, a.RaisedAt)
}
