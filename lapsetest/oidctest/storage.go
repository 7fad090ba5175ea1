package oidctest

import (
	"context"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// The provider is its own op.Storage. Every method returns copies, so
// that the op package never shares memory with the test.
var _ op.Storage = (*Provider)(nil)

type authRequest struct {
	id, clientID, redirectURI, state, nonce string
	scopes, audience                        []string
	challenge                               *oidc.CodeChallenge
	responseType                            oidc.ResponseType
	responseMode                            oidc.ResponseMode
	subject                                 string
	done                                    bool
	authTime                                time.Time
	amr                                     []string
	acr                                     string
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return a.acr }
func (a *authRequest) GetAMR() []string                      { return slices.Clone(a.amr) }
func (a *authRequest) GetAudience() []string                 { return slices.Clone(a.audience) }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return slices.Clone(a.scopes) }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.subject }
func (a *authRequest) Done() bool                            { return a.done }

// copyOf returns a copy of a with the provider's tampering applied.
func (p *Provider) copyOf(a *authRequest) *authRequest {
	c := *a
	c.scopes, c.audience, c.amr = slices.Clone(a.scopes), slices.Clone(a.audience), slices.Clone(a.amr)
	if p.tamper.Nonce != "" {
		c.nonce = p.tamper.Nonce
	}
	return &c
}

type client struct {
	id, secret string
	redirects  []string
	lifetime   time.Duration
}

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return slices.Clone(c.redirects) }
func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType         { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c *client) LoginURL(id string) string            { return "/login?authRequestID=" + id }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration       { return c.lifetime }
func (c *client) DevMode() bool                        { return true }
func (c *client) IsScopeAllowed(scope string) bool     { return scope == "groups" }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

type accessToken struct {
	id, subject, clientID string
	expires               time.Time
}

// CreateAuthRequest implements op.Storage.
func (p *Provider) CreateAuthRequest(_ context.Context, r *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := &authRequest{id: randomID(), clientID: r.ClientID, redirectURI: r.RedirectURI, state: r.State, nonce: r.Nonce,
		scopes: slices.Clone(r.Scopes), audience: []string{r.ClientID}, responseType: r.ResponseType, responseMode: r.ResponseMode}
	if r.CodeChallenge != "" {
		a.challenge = &oidc.CodeChallenge{Challenge: r.CodeChallenge, Method: r.CodeChallengeMethod}
	}
	p.lastMaxAge, p.lastPrompt = r.MaxAge, slices.Clone([]string(r.Prompt))
	p.requests[a.id] = a
	return p.copyOf(a), nil
}

// AuthRequestByID implements op.Storage.
func (p *Provider) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.requests[id]
	if !ok {
		return nil, errNotFound
	}
	return p.copyOf(a), nil
}

// AuthRequestByCode implements op.Storage.
func (p *Provider) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.requests[p.codes[code]]
	if !ok {
		return nil, errNotFound
	}
	return p.copyOf(a), nil
}

// SaveAuthCode implements op.Storage.
func (p *Provider) SaveAuthCode(_ context.Context, id, code string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.codes[code] = id
	return nil
}

// DeleteAuthRequest implements op.Storage.
func (p *Provider) DeleteAuthRequest(_ context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.requests, id)
	for c, r := range p.codes {
		if r == id {
			delete(p.codes, c)
		}
	}
	return nil
}

// CreateAccessToken implements op.Storage.
func (p *Provider) CreateAccessToken(_ context.Context, r op.TokenRequest) (string, time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := &accessToken{id: randomID(), subject: r.GetSubject(), expires: time.Now().Add(5 * time.Minute)}
	if a, ok := r.(op.AuthRequest); ok {
		t.clientID = a.GetClientID()
	}
	p.tokens[t.id] = t
	return t.id, t.expires, nil
}

// CreateAccessAndRefreshTokens implements op.Storage; refresh tokens are
// not offered.
func (p *Provider) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, fmt.Errorf("refresh tokens are not supported")
}

// TokenRequestByRefreshToken implements op.Storage.
func (p *Provider) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}

// TerminateSession implements op.Storage.
func (p *Provider) TerminateSession(context.Context, string, string) error { return nil }

// RevokeToken implements op.Storage.
func (p *Provider) RevokeToken(_ context.Context, id, _, _ string) *oidc.Error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.tokens, id)
	return nil
}

// GetRefreshTokenInfo implements op.Storage.
func (p *Provider) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

// SigningKey implements op.Storage: the published key, or another one
// when tampering.
func (p *Provider) SigningKey(context.Context) (op.SigningKey, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tamper.OtherKey {
		return p.other, nil
	}
	return p.key, nil
}

// SignatureAlgorithms implements op.Storage.
func (p *Provider) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.ES256}, nil
}

// KeySet implements op.Storage: only the published key.
func (p *Provider) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{p.key}}, nil
}

// GetClientByClientID implements op.Storage.
func (p *Provider) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clients[id]
	if !ok {
		return nil, fmt.Errorf("unknown client %q", id)
	}
	cp := *c
	cp.redirects = slices.Clone(c.redirects)
	cp.lifetime = time.Hour
	if p.tamper.Lifetime != 0 {
		cp.lifetime = p.tamper.Lifetime
	}
	return &cp, nil
}

// AuthorizeClientIDSecret implements op.Storage.
func (p *Provider) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.clients[id]
	if !ok || c.secret != secret {
		return fmt.Errorf("wrong client id or secret")
	}
	return nil
}

// SetUserinfoFromScopes implements op.Storage; see SetUserinfoFromRequest.
func (p *Provider) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest sets the ID token's user claims: email and groups.
func (p *Provider) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, r op.IDTokenRequest, _ []string) error {
	return p.userinfo(info, r.GetSubject())
}

func (p *Provider) userinfo(info *oidc.UserInfo, subject string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	u, ok := p.users[subject]
	if !ok {
		return fmt.Errorf("unknown user %q", subject)
	}
	info.Subject = u.ID
	info.Email, info.EmailVerified = u.Email, true
	if !u.NoGroups {
		g := slices.Clone(u.Groups)
		if g == nil {
			g = []string{}
		}
		info.AppendClaims("groups", g)
	}
	return nil
}

// SetUserinfoFromToken implements op.Storage (the userinfo endpoint).
func (p *Provider) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, _, subject, _ string) error {
	return p.userinfo(info, subject)
}

// SetIntrospectionFromToken implements op.Storage.
func (p *Provider) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return fmt.Errorf("introspection is not supported")
}

// GetPrivateClaimsFromScopes implements op.Storage.
func (p *Provider) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return map[string]any{}, nil
}

// GetKeyByIDAndClientID implements op.Storage.
func (p *Provider) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errNotFound
}

// ValidateJWTProfileScopes implements op.Storage.
func (p *Provider) ValidateJWTProfileScopes(_ context.Context, _ string, scopes []string) ([]string, error) {
	return slices.Clone(scopes), nil
}

// Health implements op.Storage.
func (p *Provider) Health(context.Context) error { return nil }
