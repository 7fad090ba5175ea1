package identity

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
)

// loginTTL bounds a sign-in at the provider; codeTTL the one-time code a
// CLI exchanges.
const (
	loginTTL = 10 * time.Minute
	codeTTL  = 2 * time.Minute
)

// LoginPath is where the web and the CLI start a sign-in.
const LoginPath = "/auth/login"

// LoginURL returns the local URL that signs a browser in and then returns
// to returnTo. A positive maxAge asks for an authentication no older than
// that (step-up).
func LoginURL(returnTo string, maxAge time.Duration) string {
	q := url.Values{}
	if returnTo != "" {
		q.Set("return", returnTo)
	}
	if maxAge > 0 {
		q.Set("max_age", fmt.Sprint(int64(maxAge/time.Second)))
	}
	if len(q) == 0 {
		return LoginPath
	}
	return LoginPath + "?" + q.Encode()
}

// LocalPath returns p if it is a path on this server (no scheme, no host,
// not protocol-relative), else "/". It keeps sign-in from being an open
// redirect.
func LocalPath(p string) string {
	if p == "" || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return p
}

// checkLoopback refuses a CLI redirect that is not http on a loopback
// address with a port.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return lapse.Invalidf("cli_redirect: %v", err)
	}
	host := u.Hostname()
	ip := net.ParseIP(host)
	switch {
	case u.Scheme != "http":
		return lapse.Invalidf("cli_redirect must be an http:// loopback URL, got scheme %q", u.Scheme)
	case u.User != nil || u.Fragment != "" || u.RawQuery != "":
		return lapse.Invalidf("cli_redirect must have no user, query or fragment")
	case u.Port() == "":
		return lapse.Invalidf("cli_redirect must name a port")
	case host != "localhost" && (ip == nil || !ip.IsLoopback()):
		return lapse.Invalidf("cli_redirect must point at this machine's loopback address (127.0.0.1, ::1 or localhost), got %q", host)
	}
	return nil
}

// LoginStart is what starts a sign-in.
type LoginStart struct {
	// ReturnTo is the local path a web sign-in ends on.
	ReturnTo string
	// CLIRedirect, CLIChallenge and CLIState are set by `lapse login`: its
	// loopback URL, the S256 challenge of its verifier and its state.
	CLIRedirect  string
	CLIChallenge string
	CLIState     string
	// MaxAge, if positive, asks for an authentication at most this old.
	MaxAge time.Duration
}

// StartLogin records a sign-in and returns the provider's URL to send the
// browser to, and the value of the cookie that binds the callback to this
// browser.
func (s *Service) StartLogin(ctx context.Context, in LoginStart) (authURL, browser string, err error) {
	if s.OIDC == nil {
		return "", "", lapse.NotFoundf("single sign-on is not configured on this server")
	}
	if in.MaxAge < 0 || in.MaxAge > 24*time.Hour {
		return "", "", lapse.Invalidf("max_age must be from 0 to 86400 seconds")
	}
	l := lapse.PendingLogin{ReturnTo: LocalPath(in.ReturnTo), MaxAge: in.MaxAge}
	if in.CLIRedirect != "" || in.CLIChallenge != "" {
		if err := checkLoopback(in.CLIRedirect); err != nil {
			return "", "", err
		}
		if len(in.CLIChallenge) != 43 {
			return "", "", lapse.Invalidf("cli_challenge must be the S256 challenge (43 characters of base64url) of the CLI's verifier")
		}
		if len(in.CLIState) < 16 || len(in.CLIState) > 128 {
			return "", "", lapse.Invalidf("cli_state must be 16 to 128 characters")
		}
		l.CLIRedirect, l.CLIChallenge, l.CLIState = in.CLIRedirect, in.CLIChallenge, in.CLIState
	}
	state, nonce := randomToken(""), randomToken("")
	browser = randomToken("")
	l.StateHash, l.BrowserHash, l.Nonce, l.Verifier = lapse.HashToken(state), lapse.HashToken(browser), nonce, randomToken("")
	authURL, err = s.OIDC.authURL(ctx, state, nonce, l.Verifier, in.MaxAge)
	if err != nil {
		return "", "", err
	}
	now := s.now()
	l.CreatedAt, l.ExpiresAt = now, now.Add(loginTTL)
	if err := s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.PutPendingLogin(ctx, l) }); err != nil {
		return "", "", err
	}
	return authURL, browser, nil
}

// LoginResult is the end of a sign-in at the provider.
type LoginResult struct {
	// For a web sign-in: the session token for the cookie, its expiry, and
	// the local path to return to.
	Token     string
	ExpiresAt time.Time
	ReturnTo  string
	// For a CLI sign-in: where to send the browser (the CLI's loopback
	// URL with a one-time code).
	Redirect string
	User     string
}

// LoginError is a refused sign-in. Its message is safe to show.
type LoginError struct{ Msg string }

func (e *LoginError) Error() string { return e.Msg }

// Unwrap makes a LoginError match [lapse.ErrUnauthenticated].
func (e *LoginError) Unwrap() error { return lapse.ErrUnauthenticated }

// FinishLogin completes a sign-in from the provider's callback: state and
// code from the query, browser from the cookie StartLogin set. A refusal
// is audited.
func (s *Service) FinishLogin(ctx context.Context, state, code, browser string) (LoginResult, error) {
	if s.OIDC == nil {
		return LoginResult{}, lapse.NotFoundf("single sign-on is not configured on this server")
	}
	var l lapse.PendingLogin
	err := s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		var err error
		l, err = tx.TakePendingLogin(ctx, lapse.HashToken(state))
		return err
	})
	now := s.now()
	switch {
	case errors.Is(err, lapse.ErrNotFound):
		return LoginResult{}, s.refuse(ctx, "unknown or already used sign-in state; start again")
	case err != nil:
		return LoginResult{}, err
	case !now.Before(l.ExpiresAt):
		return LoginResult{}, s.refuse(ctx, "the sign-in took too long; start again")
	case browser == "" || !equalStrings(lapse.HashToken(browser), l.BrowserHash):
		return LoginResult{}, s.refuse(ctx, "the sign-in was started in another browser; start again")
	case code == "":
		return LoginResult{}, s.refuse(ctx, "the identity provider sent no code")
	}
	facts, err := s.OIDC.exchange(ctx, code, l.Verifier, l.Nonce, l.MaxAge)
	if err != nil {
		return LoginResult{}, s.refuse(ctx, err.Error())
	}
	if l.CLIRedirect != "" {
		facts.Client = "cli"
		c := randomToken(codePrefix)
		lc := lapse.LoginCode{CodeHash: lapse.HashToken(c), Challenge: l.CLIChallenge, Session: facts, ExpiresAt: now.Add(codeTTL)}
		if err := s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.PutLoginCode(ctx, lc, now) }); err != nil {
			return LoginResult{}, err
		}
		q := url.Values{"code": {c}, "state": {l.CLIState}}
		return LoginResult{Redirect: l.CLIRedirect + "?" + q.Encode(), User: facts.User}, nil
	}
	facts.Client = "web"
	tok, _, ss, err := s.createSession(ctx, facts)
	if err != nil {
		return LoginResult{}, err
	}
	return LoginResult{Token: tok, ExpiresAt: ss.ExpiresAt, ReturnTo: l.ReturnTo, User: ss.User}, nil
}

// AbortLogin ends a sign-in that the provider refused (its callback
// carried an error): the pending sign-in is dropped and the refusal
// audited with the provider's words.
func (s *Service) AbortLogin(ctx context.Context, state, providerError string) error {
	if s.OIDC == nil {
		return lapse.NotFoundf("single sign-on is not configured on this server")
	}
	err := s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		_, err := tx.TakePendingLogin(ctx, lapse.HashToken(state))
		return err
	})
	if err != nil && !errors.Is(err, lapse.ErrNotFound) {
		return err
	}
	return s.refuse(ctx, "the identity provider refused the sign-in: "+providerError)
}

// refuse audits a refused sign-in and returns it as a [*LoginError].
func (s *Service) refuse(ctx context.Context, msg string) error {
	ev := lapse.NewAuditEvent(lapse.EvLoginRefused, "anonymous", "", lapse.Request{}, map[string]any{"reason": msg}, s.now())
	ev.To = ""
	if err := s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.AppendAudit(ctx, ev) }); err != nil {
		s.logger().Error("record a refused sign-in", "err", err)
	}
	s.logger().Warn("sign-in refused", "reason", msg)
	return &LoginError{Msg: "sign-in refused: " + msg}
}

func tokensOf(tok, refresh string, ss lapse.Session) api.Tokens {
	return api.Tokens{Token: tok, RefreshToken: refresh, ExpiresAt: ss.ExpiresAt, RefreshExpiresAt: ss.RefreshExpiresAt, User: ss.User, Groups: ss.Groups}
}

// ExchangeCode turns a CLI's one-time code into a session, once, for the
// holder of the verifier whose challenge the sign-in was started with.
func (s *Service) ExchangeCode(ctx context.Context, code, verifier string) (api.Tokens, error) {
	if code == "" || verifier == "" {
		return api.Tokens{}, lapse.Invalidf("code and code_verifier are required")
	}
	var lc lapse.LoginCode
	err := s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		var err error
		lc, err = tx.TakeLoginCode(ctx, lapse.HashToken(code))
		return err
	})
	switch {
	case errors.Is(err, lapse.ErrNotFound):
		return api.Tokens{}, s.refuse(ctx, "unknown or already used login code")
	case err != nil:
		return api.Tokens{}, err
	case !s.now().Before(lc.ExpiresAt):
		return api.Tokens{}, s.refuse(ctx, "the login code expired; run lapse login again")
	case !equalStrings(S256(verifier), lc.Challenge):
		return api.Tokens{}, s.refuse(ctx, "the code verifier does not match the sign-in's challenge")
	}
	tok, refresh, ss, err := s.createSession(ctx, lc.Session)
	if err != nil {
		return api.Tokens{}, err
	}
	return tokensOf(tok, refresh, ss), nil
}

// createSession stores a session for the facts a sign-in vouched for,
// records the user's identity and the login in the same transaction, and
// re-decides the user's grants when their groups changed.
func (s *Service) createSession(ctx context.Context, facts lapse.Session) (token, refresh string, _ lapse.Session, _ error) {
	now := s.now()
	ss := facts
	token, refresh = randomToken(sessionPrefix), randomToken(refreshPrefix)
	ss.ID, ss.TokenHash, ss.RefreshHash = newID(), lapse.HashToken(token), lapse.HashToken(refresh)
	ss.CreatedAt, ss.ExpiresAt, ss.RefreshExpiresAt = now, now.Add(s.SessionTTL), now.Add(s.RefreshTTL)
	if ss.Client == "web" {
		// A browser signs in again; it gets no refresh token.
		ss.RefreshExpiresAt = ss.ExpiresAt
	}
	if ss.Groups == nil {
		ss.Groups = []string{}
	}
	changed := false
	err := s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		accounts, err := tx.ListServiceAccounts(ctx)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(accounts, func(a lapse.ServiceAccount) bool { return a.Name == ss.User }) {
			return &LoginError{Msg: fmt.Sprintf("sign-in refused: %q is the name of a service account", ss.User)}
		}
		prev, err := tx.GetIdentity(ctx, ss.User)
		switch {
		case errors.Is(err, lapse.ErrNotFound):
		case err != nil:
			return err
		default:
			changed = !sameGroups(prev.Groups, ss.Groups)
		}
		if err := tx.PutIdentity(ctx, lapse.Identity{User: ss.User, Groups: ss.Groups, Issuer: ss.Issuer, Subject: ss.Subject, SeenAt: now}); err != nil {
			return err
		}
		if err := tx.CreateSession(ctx, ss); err != nil {
			return err
		}
		evs := []lapse.AuditEvent{sessionEvent(lapse.EvLogin, ss.User, ss, map[string]any{
			"session": ss.ID, "client": ss.Client, "groups": ss.Groups, "issuer": ss.Issuer, "subject": ss.Subject,
			"mfa": ss.MFA.Present == lapse.FlagTrue, "auth_time": ss.AuthTime, "expires_at": ss.ExpiresAt}, now)}
		if changed {
			evs = append(evs, sessionEvent(lapse.EvGroupsChanged, ss.User, ss, map[string]any{"old": prev.Groups, "new": ss.Groups}, now))
		}
		return tx.AppendAudit(ctx, evs...)
	})
	var le *LoginError
	if errors.As(err, &le) {
		return "", "", lapse.Session{}, s.refuse(ctx, strings.TrimPrefix(le.Msg, "sign-in refused: "))
	}
	if err != nil {
		return "", "", lapse.Session{}, fmt.Errorf("store session: %w", err)
	}
	if changed && s.GroupsChanged != nil {
		s.GroupsChanged(ctx, ss.User)
	}
	return token, refresh, ss, nil
}

func sessionEvent(typ, actor string, ss lapse.Session, data map[string]any, now time.Time) lapse.AuditEvent {
	ev := lapse.NewAuditEvent(typ, actor, "", lapse.Request{User: ss.User}, data, now)
	ev.To = ""
	return ev
}

// Refresh rotates a CLI session: a new session token and refresh token
// replace the old ones, until the session's refresh lifetime ends. A
// refresh token that was already rotated away revokes the session (it
// was copied).
func (s *Service) Refresh(ctx context.Context, refresh string) (api.Tokens, error) {
	if !strings.HasPrefix(refresh, refreshPrefix) {
		return api.Tokens{}, fmt.Errorf("not a Lapse refresh token: %w", lapse.ErrUnauthenticated)
	}
	h := lapse.HashToken(refresh)
	var out api.Tokens
	var reused bool
	err := s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		ss, err := tx.SessionByRefresh(ctx, h)
		if errors.Is(err, lapse.ErrNotFound) {
			return fmt.Errorf("unknown refresh token; sign in again (lapse login): %w", lapse.ErrUnauthenticated)
		}
		if err != nil {
			return err
		}
		now := s.now()
		switch {
		case !ss.RevokedAt.IsZero():
			return fmt.Errorf("session was revoked; sign in again (lapse login): %w", lapse.ErrUnauthenticated)
		case !now.Before(ss.RefreshExpiresAt):
			return fmt.Errorf("session ended at %s; sign in again (lapse login): %w", ss.RefreshExpiresAt.UTC().Format(time.RFC3339), lapse.ErrUnauthenticated)
		case ss.RefreshHash != h:
			reused = true
			ss.RevokedAt = now
			if err := tx.UpdateSession(ctx, ss); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, sessionEvent(lapse.EvSessionRevoked, "lapse", ss, map[string]any{
				"session": ss.ID, "reason": "a refresh token was used twice"}, now))
		}
		tok, next := randomToken(sessionPrefix), randomToken(refreshPrefix)
		ss.PrevRefreshHash, ss.RefreshHash, ss.TokenHash = ss.RefreshHash, lapse.HashToken(next), lapse.HashToken(tok)
		ss.ExpiresAt = now.Add(s.SessionTTL)
		if ss.ExpiresAt.After(ss.RefreshExpiresAt) {
			ss.ExpiresAt = ss.RefreshExpiresAt
		}
		if err := tx.UpdateSession(ctx, ss); err != nil {
			return err
		}
		out = tokensOf(tok, next, ss)
		return nil
	})
	if err != nil {
		return api.Tokens{}, err
	}
	if reused {
		return api.Tokens{}, fmt.Errorf("this refresh token was already used, so the session was revoked; sign in again (lapse login): %w", lapse.ErrUnauthenticated)
	}
	return out, nil
}

// Logout revokes the session p authenticated with.
func (s *Service) Logout(ctx context.Context, p lapse.Principal) error {
	if p.Session == "" {
		return lapse.Invalidf("%s is not signed in with a session (static and service tokens cannot log out)", p.Name)
	}
	return s.endSession(ctx, p, p.Name, p.Session, lapse.EvLogout, "")
}

// LogoutToken revokes the session of a session token, for the web UI's
// logout form. An unknown or ended token is not an error.
func (s *Service) LogoutToken(ctx context.Context, token string) error {
	p, err := s.AuthenticateToken(ctx, token)
	if err != nil || p.Session == "" {
		return nil
	}
	return s.Logout(ctx, p)
}

// RevokeSession revokes session id of user: p's own, or anyone's for an
// admin.
func (s *Service) RevokeSession(ctx context.Context, p lapse.Principal, user, id, reason string) error {
	if user == "" {
		user = p.Name
	}
	if user != p.Name && !p.Admin {
		return lapse.Forbiddenf("only admins may revoke another user's session")
	}
	return s.endSession(ctx, p, user, id, lapse.EvSessionRevoked, reason)
}

func (s *Service) endSession(ctx context.Context, p lapse.Principal, user, id, typ, reason string) error {
	return s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		ss, err := sessionByID(ctx, tx, user, id)
		if err != nil {
			return err
		}
		now := s.now()
		ss.RevokedAt = now
		if err := tx.UpdateSession(ctx, ss); err != nil {
			return err
		}
		data := map[string]any{"session": ss.ID, "client": ss.Client}
		if reason != "" {
			data["reason"] = reason
		}
		return tx.AppendAudit(ctx, sessionEvent(typ, p.Name, ss, data, now))
	})
}

// sessionByID finds an unrevoked session of user by id.
func sessionByID(ctx context.Context, tx lapse.Tx, user, id string) (lapse.Session, error) {
	ss, err := tx.ListSessions(ctx, user, time.Unix(0, 0))
	if err != nil {
		return lapse.Session{}, err
	}
	for _, s := range ss {
		if s.ID == id {
			return s, nil
		}
	}
	return lapse.Session{}, lapse.NotFoundf("%s has no session %q that is not revoked", user, id)
}

// Sessions lists the live sessions of user, for p (the user, or an admin
// or auditor).
func (s *Service) Sessions(ctx context.Context, p lapse.Principal, user string) ([]lapse.Session, error) {
	if user == "" {
		user = p.Name
	}
	if user != p.Name && !p.ReadsAll() {
		return nil, lapse.Forbiddenf("only admins and auditors may list another user's sessions")
	}
	var out []lapse.Session
	err := s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		var err error
		out, err = tx.ListSessions(ctx, user, s.now())
		return err
	})
	return out, err
}

// LocalSession signs a browser in with a local user's static token (the
// web UI's "sign in with an API token"): it returns a web session token
// for the cookie, so that the static token itself is never kept in the
// browser and logging out revokes the session. Only local users' tokens
// are accepted.
func (s *Service) LocalSession(ctx context.Context, static string) (LoginResult, error) {
	u, ok := s.local[sha256.Sum256([]byte(strings.TrimSpace(static)))]
	if !ok {
		return LoginResult{}, s.refuse(ctx, "unknown API token")
	}
	tok, _, ss, err := s.createSession(ctx, lapse.Session{User: u.Name, Groups: slices.Clone(u.Groups), Issuer: "local", Subject: u.Name, Client: "web"})
	if err != nil {
		return LoginResult{}, err
	}
	return LoginResult{Token: tok, ExpiresAt: ss.ExpiresAt, ReturnTo: "/", User: ss.User}, nil
}
