package identity

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/lapse-access/lapse"
)

// OIDCConfig names the identity provider and how to read its ID tokens.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL; the ID tokens' iss must equal it
	// byte for byte, and it is the only issuer accepted.
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is Lapse's callback, e.g.
	// https://lapse.example.com/auth/callback; it must be registered at the
	// provider exactly.
	RedirectURL string
	// Scopes are asked for besides openid; default email and profile.
	Scopes []string
	// UsernameClaim names the claim that becomes the Lapse user name;
	// default "email".
	UsernameClaim string
	// GroupsClaim names the claim holding the user's groups; default
	// "groups". A token without it is refused.
	GroupsClaim string
	// AllowedDomains, if set, are the email domains allowed to sign in; the
	// email must be verified.
	AllowedDomains []string
	// MFAMethods are the amr values that count as a second factor; default
	// mfa, otp, hwk, swk, sms, tel, sc, fpt, face.
	MFAMethods []string
	// MFAACRs are acr values that count as a second factor.
	MFAACRs []string
	// Timeout bounds each call to the provider; default 10s.
	Timeout time.Duration
	// HTTPClient, if set, calls the provider.
	HTTPClient *http.Client
}

// OIDC is the relying party of one OpenID Connect provider. It discovers
// the provider on first use and keeps what it found.
type OIDC struct {
	cfg OIDCConfig
	now func() time.Time

	mu       sync.Mutex
	provider *oidc.Provider
}

// NewOIDC returns the relying party for cfg. It does not call the
// provider; now is the clock ID tokens are checked against.
func NewOIDC(cfg OIDCConfig, now func() time.Time) (*OIDC, error) {
	switch {
	case cfg.Issuer == "":
		return nil, errors.New("oidc: issuer is required")
	case cfg.ClientID == "":
		return nil, errors.New("oidc: client_id is required")
	case cfg.RedirectURL == "":
		return nil, errors.New("oidc: redirect_url is required")
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "email"
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{"email", "profile"}
	}
	if cfg.MFAMethods == nil {
		cfg.MFAMethods = []string{"mfa", "otp", "hwk", "swk", "sms", "tel", "sc", "fpt", "face"}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &OIDC{cfg: cfg, now: now}, nil
}

// Issuer returns the configured issuer.
func (o *OIDC) Issuer() string { return o.cfg.Issuer }

func (o *OIDC) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.Timeout)
	if o.cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, o.cfg.HTTPClient)
	}
	return ctx, cancel
}

// discover returns the provider, asking its discovery document once.
func (o *OIDC) discover(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	ctx, cancel := o.ctx(ctx)
	defer cancel()
	p, err := oidc.NewProvider(ctx, o.cfg.Issuer)
	if err != nil {
		return nil, &ProviderError{Msg: fmt.Sprintf("identity provider %s: %s", o.cfg.Issuer, strings.TrimPrefix(err.Error(), "oidc: "))}
	}
	o.provider = p
	return p, nil
}

func (o *OIDC) oauth2(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, RedirectURL: o.cfg.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: append([]string{oidc.ScopeOpenID}, o.cfg.Scopes...)}
}

// authURL returns the provider's authorization URL for a sign-in with
// state, nonce and PKCE verifier. A positive maxAge asks the provider to
// authenticate the user again (step-up).
func (o *OIDC) authURL(ctx context.Context, state, nonce, verifier string, maxAge time.Duration) (string, error) {
	p, err := o.discover(ctx)
	if err != nil {
		return "", err
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)}
	if maxAge > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("max_age", fmt.Sprint(int64(maxAge/time.Second))),
			oauth2.SetAuthURLParam("prompt", "login"))
	}
	return o.oauth2(p).AuthCodeURL(state, opts...), nil
}

// ProviderError reports that the identity provider cannot be used: it is
// unreachable, or its discovery document does not match the configuration
// (such as an issuer that differs from the configured one). Its message
// names no secret.
type ProviderError struct{ Msg string }

func (e *ProviderError) Error() string { return e.Msg }

// claims are the ID token claims Lapse reads besides the standard ones.
type claims struct {
	AuthTime      int64    `json:"auth_time"`
	AMR           []string `json:"amr"`
	ACR           string   `json:"acr"`
	Email         string   `json:"email"`
	EmailVerified *bool    `json:"email_verified"`
}

// exchange redeems code with the PKCE verifier, verifies the ID token
// (signature, issuer, audience, expiry, nonce) and returns the session
// facts it vouches for. Every refusal says why.
func (o *OIDC) exchange(ctx context.Context, code, verifier, nonce string, maxAge time.Duration) (lapse.Session, error) {
	p, err := o.discover(ctx)
	if err != nil {
		return lapse.Session{}, err
	}
	cctx, cancel := o.ctx(ctx)
	defer cancel()
	tok, err := o.oauth2(p).Exchange(cctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			return lapse.Session{}, fmt.Errorf("the identity provider refused the code: %s %s", re.ErrorCode, re.ErrorDescription)
		}
		return lapse.Session{}, fmt.Errorf("redeem the code at the identity provider: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return lapse.Session{}, errors.New("the identity provider sent no ID token")
	}
	v := p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID, Now: o.now})
	idt, err := v.Verify(cctx, raw)
	if err != nil {
		return lapse.Session{}, fmt.Errorf("ID token refused: %s", explainVerify(err))
	}
	if !equalStrings(idt.Nonce, nonce) {
		return lapse.Session{}, errors.New("ID token refused: its nonce does not match this sign-in (replayed or forged token)")
	}
	var c claims
	all := map[string]any{}
	if err := idt.Claims(&c); err != nil {
		return lapse.Session{}, fmt.Errorf("ID token refused: %w", err)
	}
	if err := idt.Claims(&all); err != nil {
		return lapse.Session{}, fmt.Errorf("ID token refused: %w", err)
	}
	user, ok := all[o.cfg.UsernameClaim].(string)
	if !ok || user == "" {
		return lapse.Session{}, fmt.Errorf("ID token refused: it has no %q claim to name the user", o.cfg.UsernameClaim)
	}
	if len(o.cfg.AllowedDomains) > 0 {
		_, domain, _ := strings.Cut(c.Email, "@")
		switch {
		case c.Email == "" || c.EmailVerified == nil || !*c.EmailVerified:
			return lapse.Session{}, errors.New("ID token refused: no verified email to check against the allowed domains")
		case !slices.Contains(o.cfg.AllowedDomains, strings.ToLower(domain)):
			return lapse.Session{}, fmt.Errorf("sign-in refused: email domain %q is not allowed", domain)
		}
	}
	groups, err := groupsOf(all, o.cfg.GroupsClaim)
	if err != nil {
		return lapse.Session{}, fmt.Errorf("ID token refused: %w", err)
	}
	s := lapse.Session{User: user, Groups: groups, Issuer: idt.Issuer, Subject: idt.Subject}
	if c.AuthTime > 0 {
		s.AuthTime = time.Unix(c.AuthTime, 0).UTC()
	}
	if maxAge > 0 {
		// Asked to authenticate again: a provider that did not is refused,
		// or step-up would loop.
		const skew = 30 * time.Second
		if s.AuthTime.IsZero() || o.now().Sub(s.AuthTime) > maxAge+skew {
			return lapse.Session{}, fmt.Errorf("ID token refused: asked to authenticate within %s, but its auth_time is %s", maxAge, authTimeText(s.AuthTime))
		}
	}
	mfa := slices.ContainsFunc(c.AMR, func(m string) bool { return slices.Contains(o.cfg.MFAMethods, m) }) ||
		(c.ACR != "" && slices.Contains(o.cfg.MFAACRs, c.ACR))
	s.MFA.Present = lapse.FlagOf(mfa)
	if mfa {
		s.MFA.At = s.AuthTime
	}
	return s, nil
}

func authTimeText(t time.Time) string {
	if t.IsZero() {
		return "missing"
	}
	return t.Format(time.RFC3339)
}

// explainVerify turns a verification error into a sentence.
func explainVerify(err error) string {
	var exp *oidc.TokenExpiredError
	msg := err.Error()
	switch {
	case errors.As(err, &exp):
		return fmt.Sprintf("it expired at %s", exp.Expiry.UTC().Format(time.RFC3339))
	case strings.Contains(msg, "expected audience"):
		return "it was issued for another client (audience): " + strings.TrimPrefix(msg, "oidc: ")
	case strings.Contains(msg, "different provider"):
		return "it was issued by an unknown issuer: " + strings.TrimPrefix(msg, "oidc: ")
	case strings.Contains(msg, "signature"):
		return "its signature does not verify with the provider's published keys"
	}
	return msg
}

// groupsOf reads the groups claim: a list of strings, or one string.
func groupsOf(all map[string]any, claim string) ([]string, error) {
	v, ok := all[claim]
	if !ok {
		return nil, fmt.Errorf("it has no %q claim; configure the provider to send the user's groups in the ID token", claim)
	}
	switch g := v.(type) {
	case string:
		return []string{g}, nil
	case []any:
		out := make([]string, 0, len(g))
		for _, x := range g {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("claim %q holds a %T, want strings", claim, x)
			}
			out = append(out, s)
		}
		return out, nil
	case nil:
		return []string{}, nil
	}
	return nil, fmt.Errorf("claim %q holds a %T, want a list of strings", claim, v)
}
