package httpapi

import (
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/identity"
)

// loginCookie binds a sign-in's callback to the browser that started it.
const loginCookie = "lapse_login"

// identityRoutes adds sign-in, sessions and service accounts.
func (s *Server) identityRoutes(mux handleFunc, v1 func(string, handler)) {
	if s.Identity == nil {
		return
	}
	mux.HandleFunc("GET "+identity.LoginPath, s.login)
	mux.HandleFunc("GET /auth/callback", s.callback)
	mux.HandleFunc("POST /auth/token", func(w http.ResponseWriter, r *http.Request) {
		if err := s.token(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
	v1("POST /v1/logout", s.logout)
	v1("GET /v1/sessions", s.sessions)
	v1("POST /v1/sessions/{id}/revoke", s.revokeSession)
	v1("POST /v1/tokens", s.createToken)
	v1("GET /v1/tokens", s.listTokens)
	v1("POST /v1/tokens/{name}/revoke", s.revokeToken)
}

var loginErrorPage = template.Must(template.New("e").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Lapse: sign-in failed</title></head>
<body><h1>Sign-in failed</h1><p>{{.}}</p><p><a href="/auth/login">Try again</a></p></body></html>
`))

// loginError shows a sign-in failure to a browser.
func (s *Server) loginError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	msg := "internal error; the server log has details"
	var pe *identity.ProviderError
	switch {
	case errors.As(err, &pe):
		s.Logger.Error("identity provider unusable", "err", err)
		status, msg = http.StatusBadGateway, "sign-in is unavailable: "+pe.Msg
	case errors.Is(err, lapse.ErrInvalid):
		status, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, lapse.ErrUnauthenticated):
		status, msg = http.StatusUnauthorized, err.Error()
	case errors.Is(err, lapse.ErrNotFound):
		status, msg = http.StatusNotFound, err.Error()
	default:
		s.Logger.Error("sign-in failed", "path", r.URL.Path, "err", err)
		status = http.StatusBadGateway
		msg = "the identity provider could not be reached or answered unexpectedly; the server log has details"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = loginErrorPage.Execute(w, msg)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	in := identity.LoginStart{ReturnTo: q.Get("return"), CLIRedirect: q.Get("cli_redirect"),
		CLIChallenge: q.Get("cli_challenge"), CLIState: q.Get("cli_state")}
	if v := q.Get("max_age"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 86400 {
			s.loginError(w, r, lapse.Invalidf("max_age: want seconds from 0 to 86400, got %q", v))
			return
		}
		in.MaxAge = time.Duration(n) * time.Second
	}
	authURL, browser, err := s.Identity.StartLogin(r.Context(), in)
	if err != nil {
		s.loginError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: browser, Path: "/auth/", MaxAge: 600,
		HttpOnly: true, Secure: s.Identity.SecureCookies, SameSite: http.SameSiteLaxMode})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, authURL, http.StatusFound)
}

func (s *Server) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/auth/", MaxAge: -1,
		HttpOnly: true, Secure: s.Identity.SecureCookies, SameSite: http.SameSiteLaxMode})
	if e := q.Get("error"); e != "" {
		// The provider refused; drop the pending sign-in with it.
		msg := strings.TrimSpace(e + " " + q.Get("error_description"))
		if len(msg) > 300 {
			msg = msg[:300]
		}
		s.loginError(w, r, s.Identity.AbortLogin(r.Context(), q.Get("state"), msg))
		return
	}
	c, _ := r.Cookie(loginCookie)
	browser := ""
	if c != nil {
		browser = c.Value
	}
	res, err := s.Identity.FinishLogin(r.Context(), q.Get("state"), q.Get("code"), browser)
	if err != nil {
		s.loginError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if res.Redirect != "" {
		http.Redirect(w, r, res.Redirect, http.StatusFound)
		return
	}
	http.SetCookie(w, s.Identity.SessionCookie(res.Token, res.ExpiresAt))
	http.Redirect(w, r, res.ReturnTo, http.StatusSeeOther)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) error {
	var in api.TokenRequest
	if err := decode(w, r, &in); err != nil {
		return err
	}
	var t api.Tokens
	var err error
	switch in.GrantType {
	case "authorization_code":
		t, err = s.Identity.ExchangeCode(r.Context(), in.Code, in.CodeVerifier)
	case "refresh_token":
		t, err = s.Identity.Refresh(r.Context(), in.RefreshToken)
	default:
		return lapse.Invalidf("grant_type must be authorization_code or refresh_token, got %q", in.GrantType)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	if err := decodeOptional(w, r, &struct{}{}); err != nil {
		return err
	}
	if err := s.Identity.Logout(r.Context(), p); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": p.Session})
	return nil
}

func (s *Server) sessions(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	ss, err := s.Identity.Sessions(r.Context(), p, r.URL.Query().Get("user"))
	if err != nil {
		return err
	}
	out := make([]api.Session, len(ss))
	for i, x := range ss {
		out[i] = api.Session{ID: x.ID, User: x.User, Groups: x.Groups, Client: x.Client, MFA: x.MFA.Present == lapse.FlagTrue,
			CreatedAt: x.CreatedAt, ExpiresAt: x.ExpiresAt, RefreshExpiry: x.RefreshExpiresAt}
		if !x.AuthTime.IsZero() {
			at := x.AuthTime
			out[i].AuthTime = &at
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
	return nil
}

func (s *Server) revokeSession(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	var in api.RevokeSessionBody
	if err := decode(w, r, &in); err != nil {
		return err
	}
	if in.Reason == "" {
		return lapse.Invalidf("a reason is required")
	}
	if err := s.Identity.RevokeSession(r.Context(), p, in.User, r.PathValue("id"), in.Reason); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"revoked": r.PathValue("id")})
	return nil
}

func serviceAccountOf(a lapse.ServiceAccount) api.ServiceAccount {
	out := api.ServiceAccount{Name: a.Name, Groups: a.Groups, CreatedBy: a.CreatedBy, CreatedAt: a.CreatedAt}
	if out.Groups == nil {
		out.Groups = []string{}
	}
	if !a.RevokedAt.IsZero() {
		at := a.RevokedAt
		out.RevokedAt = &at
	}
	return out
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	var in api.CreateServiceAccount
	if err := decode(w, r, &in); err != nil {
		return err
	}
	tok, a, err := s.Identity.CreateServiceAccount(r.Context(), p, in.Service, in.Groups)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, api.CreatedServiceAccount{ServiceAccount: serviceAccountOf(a), Token: tok})
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	as, err := s.Identity.ServiceAccounts(r.Context(), p)
	if err != nil {
		return err
	}
	out := make([]api.ServiceAccount, len(as))
	for i, a := range as {
		out[i] = serviceAccountOf(a)
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	var in api.ReasonBody
	if err := decodeOptional(w, r, &in); err != nil {
		return err
	}
	a, err := s.Identity.RevokeServiceAccount(r.Context(), p, r.PathValue("name"), in.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, serviceAccountOf(a))
	return nil
}
