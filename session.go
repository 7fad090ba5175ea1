package lapse

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Session is a signed-in user's Lapse session: a short-lived bearer token
// and a rotating refresh token, both stored only as hashes. It carries what
// the identity provider said at sign-in: the user, their groups and their
// second factor.
type Session struct {
	ID string
	// TokenHash and RefreshHash are [HashToken] of the bearer and refresh
	// tokens.
	TokenHash   string
	RefreshHash string
	// PrevRefreshHash is the refresh token the last rotation replaced; a
	// session whose old refresh token comes back is revoked.
	PrevRefreshHash string
	User            string
	Groups          []string
	// Issuer and Subject name the user at the identity provider.
	Issuer  string
	Subject string
	// Client is "web" or "cli".
	Client string
	MFA    MFASignals
	// AuthTime is when the user last authenticated at the provider.
	AuthTime  time.Time
	CreatedAt time.Time
	// ExpiresAt ends the bearer token; RefreshExpiresAt ends the session.
	ExpiresAt        time.Time
	RefreshExpiresAt time.Time
	// RevokedAt is set once the session is revoked; zero while it is not.
	RevokedAt time.Time
}

// SessionRetention is how long a session is kept after it can no longer
// be refreshed, for investigations; the audit log keeps its sign-in for
// good.
const SessionRetention = 7 * 24 * time.Hour

// Valid reports whether the session's bearer token may be used at now.
func (s Session) Valid(now time.Time) bool {
	return s.RevokedAt.IsZero() && now.Before(s.ExpiresAt)
}

// Identity is what the identity provider said of a user at their last
// sign-in: the groups that decisions about their grants use later, while no
// session of theirs is at hand.
type Identity struct {
	User    string
	Groups  []string
	Issuer  string
	Subject string
	SeenAt  time.Time
}

// ServiceAccount is a machine identity with a long-lived bearer token,
// stored only as a hash.
type ServiceAccount struct {
	Name      string    `json:"name"`
	Groups    []string  `json:"groups"`
	TokenHash string    `json:"-"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// RevokedAt is set once the token is revoked; zero while it is not.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// PendingLogin is a sign-in at the identity provider that has not come back
// yet. It is looked up by StateHash, the hash of the state parameter.
type PendingLogin struct {
	StateHash string
	// BrowserHash is the hash of the cookie set in the browser that started
	// the sign-in; the callback must come from the same browser.
	BrowserHash string
	Nonce       string
	// Verifier is the PKCE code verifier sent to the provider's token
	// endpoint.
	Verifier string
	// ReturnTo is the local path a web sign-in returns to.
	ReturnTo string
	// CLIRedirect and CLIChallenge are set for a CLI sign-in: the loopback
	// URL to send the one-time code to, and the S256 challenge of the
	// verifier the CLI holds.
	CLIRedirect  string
	CLIChallenge string
	CLIState     string
	// MaxAge, if positive, was asked of the provider (step-up).
	MaxAge    time.Duration
	CreatedAt time.Time
	ExpiresAt time.Time
}

// LoginCode is a one-time code handed to the CLI's loopback listener after
// a sign-in. It is exchanged, once, with the verifier of Challenge for a
// session holding Session's facts.
type LoginCode struct {
	CodeHash  string
	Challenge string
	// Session holds the signed-in identity; its token hashes and times are
	// set at the exchange.
	Session   Session
	ExpiresAt time.Time
}

// HashToken returns the hex SHA-256 of a bearer, refresh or one-time token.
// The tokens are random, so one unsalted hash suffices.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// StepUpError reports that a policy needs a fresher second factor than the
// caller's session has. It matches [ErrUnauthenticated].
type StepUpError struct {
	// MaxAge is the age the second factor may have at most.
	MaxAge time.Duration
	// Policies and Reasons are the deciding policies.
	Policies []string
	Reasons  []string
}

func (e *StepUpError) Error() string {
	return fmt.Sprintf("sign in again with a second factor (needed within %s): %v", e.MaxAge, e.Reasons)
}

// Unwrap makes a StepUpError match [ErrUnauthenticated].
func (e *StepUpError) Unwrap() error { return ErrUnauthenticated }
