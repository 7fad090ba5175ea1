package main

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/config"
	"github.com/lapse-access/lapse/identity"
)

// newIdentity wires authentication: local users, sessions, service
// accounts, and single sign-on when configured. addr is the listener's
// address: cookies are Secure unless it is loopback, and it makes the
// default OIDC redirect URL.
func newIdentity(cfg *config.Config, store lapse.Store, clock lapse.Clock, logger *slog.Logger, addr net.Addr) (*identity.Service, error) {
	s := &identity.Service{Store: store, Clock: clock, Logger: logger.With("system", "identity"),
		AdminGroups: cfg.AdminGroups, AuditorGroups: cfg.AuditorGroups, SecureCookies: !isLoopback(addr)}
	for _, u := range cfg.Users {
		s.Local = append(s.Local, identity.LocalUser{Name: u.Name, Groups: u.Groups, TokenSHA256: u.TokenSHA256})
	}
	if o := cfg.OIDC; o != nil {
		secret, err := readSecret(o.ClientSecretEnv, o.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("oidc client secret: %w", err)
		}
		redirect := o.RedirectURL
		if redirect == "" {
			if !isLoopback(addr) {
				return nil, fmt.Errorf("oidc.redirect_url is required when listening on %s: the URL the identity provider sends browsers back to, e.g. https://lapse.example.com/auth/callback", addr)
			}
			redirect = "http://" + addr.String() + "/auth/callback"
		}
		s.SessionTTL, s.RefreshTTL = o.SessionTTL, o.RefreshTTL
		s.OIDC, err = identity.NewOIDC(identity.OIDCConfig{Issuer: o.Issuer, ClientID: o.ClientID, ClientSecret: secret,
			RedirectURL: redirect, Scopes: o.Scopes, UsernameClaim: o.UsernameClaim, GroupsClaim: o.GroupsClaim,
			AllowedDomains: o.AllowedDomains, MFAMethods: o.MFAMethods, MFAACRs: o.MFAACRs}, clock.Now)
		if err != nil {
			return nil, err
		}
	}
	if err := s.Init(); err != nil {
		return nil, err
	}
	return s, nil
}

func isLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
