package api

import "time"

// TokenRequest is the body of POST /auth/token: the CLI exchanges a
// one-time sign-in code (grant_type authorization_code, with code and
// code_verifier) or rotates its session (grant_type refresh_token).
type TokenRequest struct {
	GrantType    string `json:"grant_type"`
	Code         string `json:"code,omitempty"`
	CodeVerifier string `json:"code_verifier,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// Tokens are a session as the CLI keeps it: a bearer token and the
// refresh token that replaces both.
type Tokens struct {
	Token            string    `json:"token"`
	RefreshToken     string    `json:"refresh_token"`
	ExpiresAt        time.Time `json:"expires_at"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
	User             string    `json:"user"`
	Groups           []string  `json:"groups"`
}

// Session is a sign-in session as listed; it never carries tokens.
type Session struct {
	ID            string     `json:"id"`
	User          string     `json:"user"`
	Groups        []string   `json:"groups"`
	Client        string     `json:"client"`
	MFA           bool       `json:"mfa"`
	AuthTime      *time.Time `json:"auth_time,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	ExpiresAt     time.Time  `json:"expires_at"`
	RefreshExpiry time.Time  `json:"refresh_expires_at"`
}

// RevokeSessionBody is the body of POST /v1/sessions/{id}/revoke.
type RevokeSessionBody struct {
	// User owns the session; default the caller.
	User   string `json:"user"`
	Reason string `json:"reason"`
}

// CreateServiceAccount is the body of POST /v1/tokens.
type CreateServiceAccount struct {
	Service string   `json:"service"`
	Groups  []string `json:"groups"`
}

// ServiceAccount is a service account as listed; never its token.
type ServiceAccount struct {
	Name      string     `json:"name"`
	Groups    []string   `json:"groups"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// CreatedServiceAccount is the answer to POST /v1/tokens: the token is
// shown this once.
type CreatedServiceAccount struct {
	ServiceAccount
	Token string `json:"token"`
}
