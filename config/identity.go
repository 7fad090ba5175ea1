package config

import (
	"net/url"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// OIDC configures single sign-on through an OpenID Connect provider.
type OIDC struct {
	// Issuer is the provider's issuer URL, exactly as its discovery
	// document says it (scheme, host, path, no trailing slash unless it
	// has one).
	Issuer   string
	ClientID string
	// ClientSecretEnv or ClientSecretFile name where the client secret is;
	// it is never in the file.
	ClientSecretEnv  string
	ClientSecretFile string
	// RedirectURL is Lapse's /auth/callback as the provider knows it;
	// required unless Lapse listens on loopback (then http://LISTEN/auth/callback).
	RedirectURL string
	// Scopes are asked for besides openid; default email, profile.
	Scopes []string
	// UsernameClaim (default email) names users; GroupsClaim (default
	// groups) holds their groups.
	UsernameClaim string
	GroupsClaim   string
	// AllowedDomains, if set, are the email domains that may sign in.
	AllowedDomains []string
	// MFAMethods are the amr values that count as a second factor;
	// MFAACRs the acr values.
	MFAMethods []string
	MFAACRs    []string
	// SessionTTL is how long a session token lasts (default 12h);
	// RefreshTTL how long the CLI may refresh it (default 7d).
	SessionTTL time.Duration
	RefreshTTL time.Duration
}

func (p *parser) oidc(n *yaml.Node) *OIDC {
	o := &OIDC{}
	p.mapping(n, "oidc", map[string]func(*yaml.Node){
		"issuer":             func(n *yaml.Node) { o.Issuer = p.str(n) },
		"client_id":          func(n *yaml.Node) { o.ClientID = p.str(n) },
		"client_secret_env":  func(n *yaml.Node) { o.ClientSecretEnv = p.str(n) },
		"client_secret_file": func(n *yaml.Node) { o.ClientSecretFile = p.str(n) },
		"client_secret": func(n *yaml.Node) {
			p.addf(n, "oidc.client_secret: secrets never go in this file; use client_secret_env or client_secret_file")
		},
		"redirect_url":    func(n *yaml.Node) { o.RedirectURL = p.str(n) },
		"scopes":          func(n *yaml.Node) { o.Scopes = p.strs(n, "scope") },
		"username_claim":  func(n *yaml.Node) { o.UsernameClaim = p.str(n) },
		"groups_claim":    func(n *yaml.Node) { o.GroupsClaim = p.str(n) },
		"allowed_domains": func(n *yaml.Node) { o.AllowedDomains = p.strs(n, "domain") },
		"mfa_amr":         func(n *yaml.Node) { o.MFAMethods = p.strs(n, "amr value") },
		"mfa_acr":         func(n *yaml.Node) { o.MFAACRs = p.strs(n, "acr value") },
		"session_ttl":     func(n *yaml.Node) { o.SessionTTL = p.duration(n, "oidc.session_ttl") },
		"refresh_ttl":     func(n *yaml.Node) { o.RefreshTTL = p.duration(n, "oidc.refresh_ttl") },
	})
	if u, err := url.Parse(o.Issuer); o.Issuer == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		p.addf(n, "oidc.issuer must be the provider's issuer URL, e.g. https://idp.example.com")
	}
	if o.ClientID == "" {
		p.addf(n, "oidc.client_id is required")
	}
	if (o.ClientSecretEnv == "") == (o.ClientSecretFile == "") {
		p.addf(n, "oidc: set exactly one of client_secret_env and client_secret_file")
	}
	if o.RedirectURL != "" {
		if u, err := url.Parse(o.RedirectURL); err != nil || u.Host == "" || !strings.HasSuffix(u.Path, "/auth/callback") {
			p.addf(n, "oidc.redirect_url must be this server's URL ending in /auth/callback")
		}
	}
	for i, d := range o.AllowedDomains {
		o.AllowedDomains[i] = strings.ToLower(d)
	}
	if o.SessionTTL == 0 {
		o.SessionTTL = 12 * time.Hour
	}
	if o.RefreshTTL == 0 {
		o.RefreshTTL = 7 * 24 * time.Hour
	}
	if o.RefreshTTL < o.SessionTTL {
		p.addf(n, "oidc.refresh_ttl (%s) must not be shorter than session_ttl (%s)", o.RefreshTTL, o.SessionTTL)
	}
	return o
}

// strs reads a list of non-empty strings.
func (p *parser) strs(n *yaml.Node, what string) []string {
	if n.Kind != yaml.SequenceNode {
		p.addf(n, "%ss must be a list", what)
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for _, c := range n.Content {
		if s := p.str(c); s != "" {
			out = append(out, s)
		}
	}
	return out
}
