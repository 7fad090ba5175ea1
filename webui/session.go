package webui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lapse-access/lapse"
)

// CookieName is the session cookie: it holds a bearer token that the
// server's authenticator accepts.
const CookieName = "lapse_session"

// signinCookie binds the sign-in form's CSRF token to the browser that
// loaded the form, before there is a session.
const signinCookie = "lapse_signin"

// maxToken bounds a pasted token and a cookie value.
const maxToken = 4096

// maxForm bounds a form body.
const maxForm = 64 << 10

// errNoSession reports a visitor without a session cookie.
var errNoSession = fmt.Errorf("not signed in: %w", lapse.ErrUnauthenticated)

// session is a signed-in principal and the token of their cookie.
type session struct {
	lapse.Principal
	token string
}

// session authenticates the session cookie of r.
func (s *Server) session(r *http.Request) (session, error) {
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" {
		return session{}, errNoSession
	}
	if len(c.Value) > maxToken {
		return session{}, fmt.Errorf("session cookie too long: %w", lapse.ErrUnauthenticated)
	}
	p, err := s.authenticate(r, c.Value)
	if err != nil {
		return session{}, err
	}
	return session{Principal: p, token: c.Value}, nil
}

// authenticate asks the authenticator about token as the bearer token of
// a copy of r.
func (s *Server) authenticate(r *http.Request, token string) (lapse.Principal, error) {
	ar := r.Clone(r.Context())
	ar.Header.Set("Authorization", "Bearer "+token)
	p, err := s.cfg.Auth.Authenticate(ar)
	if err != nil {
		if !errors.Is(err, lapse.ErrUnauthenticated) {
			return lapse.Principal{}, fmt.Errorf("authenticate: %w", err)
		}
		return lapse.Principal{}, err
	}
	return p, nil
}

// secure reports whether cookies for r get the Secure attribute: always
// but on a loopback listener reached over plain HTTP. A proxy that
// terminates TLS in front of a loopback listener says so with
// X-Forwarded-Proto; believing a forged one costs nothing, since it only
// restricts the cookie further.
func (s *Server) secure(r *http.Request) bool {
	return r.TLS != nil || !s.cfg.Loopback || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// SetSession sets the session cookie to token, a bearer token that the
// server's authenticator accepts, until expires (a browser session when
// zero). Single sign-on calls it once it has created a session.
func (s *Server) SetSession(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
	c := &http.Cookie{Name: CookieName, Value: token, Path: "/", HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteLaxMode}
	if !expires.IsZero() {
		c.Expires = expires.UTC()
		c.MaxAge = max(int(expires.Sub(s.now()).Seconds()), 1)
	}
	http.SetCookie(w, c)
}

func (s *Server) clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteLaxMode})
}

// mac is HMAC-SHA256 of purpose and value under the CSRF key.
func (s *Server) mac(purpose, value string) string {
	m := hmac.New(sha256.New, s.cfg.CSRFKey)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfToken is the synchronizer token of the forms of the session whose
// cookie holds token.
func (s *Server) csrfToken(token string) string { return s.mac("lapse-ui-csrf", token) }

// signinToken is the token of the sign-in form loaded with the sign-in
// cookie nonce.
func (s *Server) signinToken(nonce string) string { return s.mac("lapse-ui-signin", nonce) }

// checkForm checks a state-changing POST before anything else reads it:
// it must come from this origin (Origin and Sec-Fetch-Site, when the
// browser sends them) and carry the CSRF token of its session cookie. On
// failure it answers 403 and returns false.
func (s *Server) checkForm(w http.ResponseWriter, r *http.Request) bool {
	if why := s.crossSite(r); why != "" {
		s.refuse(w, r, why)
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		s.render(w, r, http.StatusBadRequest, "error", &view{Title: "Bad request", Status: http.StatusBadRequest,
			Error: "The form could not be read (too large or malformed). Nothing was changed."})
		return false
	}
	want := ""
	if c, err := r.Cookie(CookieName); err == nil && c.Value != "" {
		want = s.csrfToken(c.Value)
	}
	if r.URL.Path == "/signin" {
		want = ""
		if c, err := r.Cookie(signinCookie); err == nil && c.Value != "" {
			want = s.signinToken(c.Value)
		}
	}
	got := r.PostForm.Get("csrf")
	if want == "" || !hmac.Equal([]byte(got), []byte(want)) {
		s.refuse(w, r, "The form's security token is missing or does not match your session (it may be from before you signed in again). Reload the page and try again.")
		return false
	}
	return true
}

// refuse answers a forged or stale form with 403. Nothing was done.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, why string) {
	s.cfg.Logger.Warn("form refused", "path", r.URL.Path, "origin", r.Header.Get("Origin"), "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
	s.render(w, r, http.StatusForbidden, "error", &view{Title: "Form refused", Status: http.StatusForbidden,
		Error: why + " Nothing was changed."})
}

// crossSite says why r does not come from this origin, or "" when it may.
// Browsers send Sec-Fetch-Site with every request, and it is then the
// answer; they send Origin with every POST, but as "null" under
// Referrer-Policy no-referrer, which these pages set. A client that sends
// neither still needs the CSRF token.
func (s *Server) crossSite(r *http.Request) string {
	site := r.Header.Get("Sec-Fetch-Site")
	if site != "" && site != "same-origin" {
		return fmt.Sprintf("The form was sent from another site (%s).", site)
	}
	o := r.Header.Get("Origin")
	switch {
	case o == "":
		return ""
	case o == "null" && site == "same-origin":
		return ""
	}
	got, err := parseOrigin(o)
	if err != nil {
		return "The form was sent from an unknown origin."
	}
	if s.cfg.Origin != "" {
		if got != s.cfg.Origin {
			return "The form was sent from another origin."
		}
		return ""
	}
	if u, _ := url.Parse(got); u == nil || !strings.EqualFold(u.Host, r.Host) {
		return "The form was sent from another origin."
	}
	return ""
}

// parseOrigin normalises an origin: scheme and host, lower case, no path.
func parseOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("want scheme://host[:port], got %q", s)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// localPath returns next when it is a path on this server, else "/".
func localPath(next string) string {
	if next == "" || len(next) > 2048 || next[0] != '/' || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}

func signinURL(next string) string {
	if next == "" || localPath(next) == "/" {
		return "/signin"
	}
	return "/signin?next=" + url.QueryEscape(next)
}

// signinPage shows the sign-in form, or sends a signed-in user on.
func (s *Server) signinPage(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"))
	if _, err := s.session(r); err == nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	s.renderSignin(w, r, http.StatusOK, next, "")
}

func (s *Server) renderSignin(w http.ResponseWriter, r *http.Request, status int, next, msg string) {
	nonce := ""
	if c, err := r.Cookie(signinCookie); err == nil && len(c.Value) == 32 {
		nonce = c.Value
	} else {
		var b [16]byte
		_, _ = rand.Read(b[:])
		nonce = hex.EncodeToString(b[:])
		http.SetCookie(w, &http.Cookie{Name: signinCookie, Value: nonce, Path: "/signin", MaxAge: 3600, HttpOnly: true,
			Secure: s.secure(r), SameSite: http.SameSiteStrictMode})
	}
	s.render(w, r, status, "signin", &view{Title: "Sign in", Next: next, SigninCSRF: s.signinToken(nonce),
		SSOLoginURL: s.cfg.SSOLoginURL, Error: msg, Status: status})
}

// signin verifies a pasted API token and, if the authenticator accepts it,
// makes it the session.
func (s *Server) signin(w http.ResponseWriter, r *http.Request) {
	if !s.checkForm(w, r) {
		return
	}
	next := localPath(r.PostForm.Get("next"))
	token := strings.TrimSpace(r.PostForm.Get("token"))
	switch {
	case token == "":
		s.renderSignin(w, r, http.StatusBadRequest, next, "Paste your API token to sign in.")
		return
	case len(token) > maxToken || !validCookieValue(token):
		s.renderSignin(w, r, http.StatusBadRequest, next, "That is not an API token.")
		return
	}
	cookie, expires := token, s.now().Add(s.cfg.SessionTTL)
	var err error
	if s.cfg.Exchange != nil {
		cookie, expires, err = s.cfg.Exchange(r.Context(), token)
	}
	var p lapse.Principal
	if err == nil {
		p, err = s.authenticate(r, cookie)
	}
	switch {
	case errors.Is(err, lapse.ErrUnauthenticated):
		s.cfg.Logger.Info("sign-in refused", "client", r.RemoteAddr)
		s.renderSignin(w, r, http.StatusUnauthorized, next, "That token is not valid. Nothing was signed in.")
		return
	case err != nil:
		s.cfg.Logger.Error("sign in", "err", err)
		s.renderSignin(w, r, http.StatusInternalServerError, next, "The token could not be checked; the server log has details. Try again.")
		return
	}
	s.cfg.Logger.Info("signed in", "user", p.Name, "client", r.RemoteAddr)
	s.SetSession(w, r, cookie, expires)
	http.SetCookie(w, &http.Cookie{Name: signinCookie, Value: "", Path: "/signin", MaxAge: -1, HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// validCookieValue reports whether v can be a cookie value as it is.
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
	}
	return true
}

// signout clears the session cookie and lets the identity code revoke the
// session behind it.
func (s *Server) signout(w http.ResponseWriter, r *http.Request) {
	if !s.checkForm(w, r) {
		return
	}
	if c, err := r.Cookie(CookieName); err == nil && c.Value != "" && s.cfg.Logout != nil {
		if err := s.cfg.Logout(r.Context(), c.Value); err != nil {
			s.cfg.Logger.Error("end session", "err", err)
		}
	}
	s.clearSession(w, r)
	w.Header().Set("Clear-Site-Data", `"cache", "storage"`)
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}
