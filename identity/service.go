package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lapse-access/lapse"
)

// Token prefixes tell the kinds of bearer tokens apart at a glance (and to
// secret scanners).
const (
	sessionPrefix = "lapse_s_"
	refreshPrefix = "lapse_r_"
	servicePrefix = "lapse_svc_"
	codePrefix    = "lapse_c_"
)

// SessionCookie is the name of the browser's session cookie. It holds a
// session token, the same the API accepts as a bearer token.
const SessionCookie = "lapse_session"

// LocalUser is a user of the config file with a static token.
type LocalUser struct {
	Name   string
	Groups []string
	// TokenSHA256 is the SHA-256 of the user's bearer token.
	TokenSHA256 [32]byte
}

// Service authenticates callers and runs sign-in, sessions and service
// accounts. Set the fields, then use it concurrently.
type Service struct {
	Store  lapse.Store
	Clock  lapse.Clock
	Logger *slog.Logger
	// Local are the config file's users.
	Local []LocalUser
	// AdminGroups may revoke anything and read everything; AuditorGroups
	// may read everything and change nothing.
	AdminGroups   []string
	AuditorGroups []string
	// SessionTTL is how long a session token lasts (default 12h);
	// RefreshTTL how long a CLI session can be refreshed from its sign-in
	// (default 7 days).
	SessionTTL time.Duration
	RefreshTTL time.Duration
	// OIDC is the identity provider; nil when single sign-on is off.
	OIDC *OIDC
	// SecureCookies marks cookies Secure (off only on loopback listeners).
	SecureCookies bool
	// GroupsChanged, if set, is called after a sign-in whose groups differ
	// from the user's previous sign-in, so that their grants are decided
	// again.
	GroupsChanged func(ctx context.Context, user string)

	local map[[32]byte]LocalUser
}

// Init checks the configuration and indexes the local users. Call it once
// before use.
func (s *Service) Init() error {
	s.local = make(map[[32]byte]LocalUser, len(s.Local))
	for _, u := range s.Local {
		if _, dup := s.local[u.TokenSHA256]; dup {
			return fmt.Errorf("users %q and another share a token", u.Name)
		}
		s.local[u.TokenSHA256] = u
	}
	if s.SessionTTL <= 0 {
		s.SessionTTL = 12 * time.Hour
	}
	if s.RefreshTTL <= 0 {
		s.RefreshTTL = 7 * 24 * time.Hour
	}
	if s.RefreshTTL < s.SessionTTL {
		s.RefreshTTL = s.SessionTTL
	}
	return nil
}

func (s *Service) now() time.Time {
	if s.Clock == nil {
		return time.Now()
	}
	return s.Clock.Now()
}

func (s *Service) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.Default().With("system", "identity")
	}
	return s.Logger
}

// SSO reports whether single sign-on is configured.
func (s *Service) SSO() bool { return s.OIDC != nil }

// principal is name with groups and the rights those give.
func (s *Service) principal(name string, groups []string) lapse.Principal {
	in := func(gs []string) bool {
		return slices.ContainsFunc(groups, func(g string) bool { return slices.Contains(gs, g) })
	}
	return lapse.Principal{Name: name, Groups: slices.Clone(groups), Admin: in(s.AdminGroups), Auditor: in(s.AuditorGroups)}
}

// Directory returns a user's current groups and rights: from the config
// file for local users, from their last sign-in for others. It is what
// decisions about earlier grants use.
func (s *Service) Directory(ctx context.Context, name string) (lapse.Principal, bool) {
	for _, u := range s.Local {
		if u.Name == name {
			return s.principal(u.Name, u.Groups), true
		}
	}
	id, err := s.Store.GetIdentity(ctx, name)
	if err != nil {
		if !errors.Is(err, lapse.ErrNotFound) {
			s.logger().Error("read identity", "user", name, "err", err)
		}
		return lapse.Principal{}, false
	}
	return s.principal(id.User, id.Groups), true
}

// Authenticate implements the HTTP API's authenticator: the bearer token
// of the Authorization header. Cookies are not accepted here, so that
// another site cannot make a browser call the API.
func (s *Service) Authenticate(r *http.Request) (lapse.Principal, error) {
	tok, err := BearerToken(r)
	if err != nil {
		return lapse.Principal{}, err
	}
	return s.AuthenticateToken(r.Context(), tok)
}

// BearerToken returns the token of r's Authorization header, or an error
// matching [lapse.ErrUnauthenticated] that says what is wrong with it.
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", fmt.Errorf("missing bearer token: %w", lapse.ErrUnauthenticated)
	}
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", fmt.Errorf("authorization header must be 'Bearer <token>': %w", lapse.ErrUnauthenticated)
	}
	return tok, nil
}

// AuthenticateCookie authenticates the browser session cookie of r, for
// the web UI.
func (s *Service) AuthenticateCookie(r *http.Request) (lapse.Principal, error) {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return lapse.Principal{}, fmt.Errorf("not signed in: %w", lapse.ErrUnauthenticated)
	}
	return s.AuthenticateToken(r.Context(), c.Value)
}

// AuthenticateToken returns the principal of a bearer token: a session, a
// service account's or a local user's token. Anything else is an error
// matching [lapse.ErrUnauthenticated].
func (s *Service) AuthenticateToken(ctx context.Context, tok string) (lapse.Principal, error) {
	switch {
	case strings.HasPrefix(tok, sessionPrefix):
		ss, err := s.Store.SessionByToken(ctx, lapse.HashToken(tok))
		if errors.Is(err, lapse.ErrNotFound) {
			return lapse.Principal{}, fmt.Errorf("unknown session token; sign in again (lapse login): %w", lapse.ErrUnauthenticated)
		}
		if err != nil {
			return lapse.Principal{}, err
		}
		switch now := s.now(); {
		case !ss.RevokedAt.IsZero():
			return lapse.Principal{}, fmt.Errorf("session was revoked; sign in again (lapse login): %w", lapse.ErrUnauthenticated)
		case !now.Before(ss.ExpiresAt):
			return lapse.Principal{}, fmt.Errorf("session expired at %s; refresh or sign in again (lapse login): %w",
				ss.ExpiresAt.UTC().Format(time.RFC3339), lapse.ErrUnauthenticated)
		}
		p := s.principal(ss.User, ss.Groups)
		p.Session, p.MFA = ss.ID, ss.MFA
		return p, nil
	case strings.HasPrefix(tok, servicePrefix):
		a, err := s.Store.ServiceAccountByToken(ctx, lapse.HashToken(tok))
		if errors.Is(err, lapse.ErrNotFound) {
			return lapse.Principal{}, fmt.Errorf("unknown service token: %w", lapse.ErrUnauthenticated)
		}
		if err != nil {
			return lapse.Principal{}, err
		}
		if !a.RevokedAt.IsZero() {
			return lapse.Principal{}, fmt.Errorf("service token of %s was revoked: %w", a.Name, lapse.ErrUnauthenticated)
		}
		p := s.principal(a.Name, a.Groups)
		// A machine never administers: its groups give it no admin or
		// auditor rights.
		p.Admin, p.Auditor, p.Service = false, false, true
		return p, nil
	}
	u, ok := s.local[sha256.Sum256([]byte(tok))]
	if !ok {
		return lapse.Principal{}, fmt.Errorf("unknown token: %w", lapse.ErrUnauthenticated)
	}
	return s.principal(u.Name, u.Groups), nil
}

// randomToken returns prefix and 32 random bytes in base64url.
func randomToken(prefix string) string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// newID returns a random id for a session.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// S256 returns the PKCE S256 challenge of verifier.
func S256(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

func equalStrings(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// sameGroups reports whether a and b hold the same groups, in any order.
func sameGroups(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// SessionCookie returns the browser's session cookie holding token until
// expires: HttpOnly, SameSite=Lax, Path=/, Secure unless the server
// listens on loopback only.
func (s *Service) SessionCookie(token string, expires time.Time) *http.Cookie {
	return &http.Cookie{Name: SessionCookie, Value: token, Path: "/", Expires: expires.UTC(),
		MaxAge: max(1, int(time.Until(expires)/time.Second)), HttpOnly: true, Secure: s.SecureCookies, SameSite: http.SameSiteLaxMode}
}
