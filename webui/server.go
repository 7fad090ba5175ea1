package webui

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/broker"
	"github.com/lapse-access/lapse/httpapi"
)

// Authenticator turns a request's bearer token into a principal, or returns
// an error matching [lapse.ErrUnauthenticated]. [httpapi.StaticTokens]
// implements it.
type Authenticator interface {
	Authenticate(r *http.Request) (lapse.Principal, error)
}

var (
	_ Authenticator = (*httpapi.StaticTokens)(nil)
	_ http.Handler  = (*Server)(nil)
)

// Config configures a [Server]. Broker and Auth are required.
type Config struct {
	Broker *broker.Broker
	// Auth verifies the token in the session cookie, presented to it as an
	// Authorization: Bearer header.
	Auth Authenticator
	// Loopback says that the server listens on a loopback address only:
	// the session cookie then goes without Secure, so that a plain
	// http://127.0.0.1 works. A request that arrives over TLS, or from a
	// proxy that says X-Forwarded-Proto: https, gets a Secure cookie
	// regardless.
	Loopback bool
	// Origin is the public origin of the UI (https://lapse.example.com),
	// which state-changing forms must come from. Empty means the origin
	// whose host is the request's Host header.
	Origin string
	// CSRFKey keys the forms' synchronizer tokens: at least 32 bytes,
	// shared by the replicas behind one name. Empty means a random key,
	// so that forms rendered before a restart are refused after it.
	CSRFKey []byte
	// Exchange, if set, turns a pasted API token into the token the
	// session cookie holds (a server-side session that signing out
	// revokes) and its expiry; an error matching [lapse.ErrUnauthenticated]
	// means the token is not valid. Without it the cookie holds the pasted
	// token itself, verified by Auth.
	Exchange func(ctx context.Context, token string) (session string, expires time.Time, err error)
	// SSOLoginURL, if set, is where the sign-in page's "Sign in with SSO"
	// link points (e.g. /auth/login).
	SSOLoginURL string
	// Logout, if set, is called with the session token when a user signs
	// out, so that a server-side session can be revoked. Its error is
	// logged; the cookie is cleared in any case.
	Logout func(ctx context.Context, token string) error
	// StepUp, if set, is asked about every error of a page or form: the
	// authenticator's and the broker's. A non-empty URL means the user
	// must authenticate again (a fresher second factor, say) at that URL:
	// a GET is redirected there, a form is answered with 401 and a page
	// that links to it and says that nothing was done. It returns "" for
	// the errors it does not claim.
	StepUp func(r *http.Request, err error) string
	// ClientIP, if set, finds a request's client address (behind trusted
	// proxies); by default it is the connection's peer.
	ClientIP func(r *http.Request) string
	// ParseDuration parses durations in forms; time.ParseDuration if nil.
	ParseDuration func(string) (time.Duration, error)
	// SessionTTL is the lifetime of the cookie set by a token sign-in;
	// default 12 hours.
	SessionTTL time.Duration
	// Clock tells the time for countdowns; the system clock if nil.
	Clock  lapse.Clock
	Logger *slog.Logger
}

// Server is the web UI, an [http.Handler].
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	pages   map[string]*pageTemplate
	assets  map[string]asset
	version string
}

// New checks cfg and returns the UI.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Broker == nil:
		return nil, errors.New("webui: no broker")
	case cfg.Auth == nil:
		return nil, errors.New("webui: no authenticator")
	case len(cfg.CSRFKey) == 0:
		cfg.CSRFKey = make([]byte, 32)
		if _, err := rand.Read(cfg.CSRFKey); err != nil {
			return nil, fmt.Errorf("webui: generate CSRF key: %w", err)
		}
	case len(cfg.CSRFKey) < 32:
		return nil, fmt.Errorf("webui: the CSRF key has %d bytes; at least 32 are needed", len(cfg.CSRFKey))
	}
	if cfg.Origin != "" {
		o, err := parseOrigin(cfg.Origin)
		if err != nil {
			return nil, fmt.Errorf("webui: origin: %w", err)
		}
		cfg.Origin = o
	}
	if cfg.ParseDuration == nil {
		cfg.ParseDuration = time.ParseDuration
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Clock == nil {
		cfg.Clock = lapse.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default().With("system", "webui")
	}
	s := &Server{cfg: cfg}
	var err error
	if s.assets, s.version, err = loadAssets(); err != nil {
		return nil, err
	}
	if s.pages, err = parsePages(s.version); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /static/{name}", s.static)
	m.HandleFunc("GET /signin", s.signinPage)
	m.HandleFunc("POST /signin", s.signin)
	m.HandleFunc("POST /signout", s.signout)
	m.HandleFunc("GET /{$}", s.page(s.myRequests))
	m.HandleFunc("GET /requests/new", s.page(s.newRequest))
	m.HandleFunc("POST /requests", s.form(s.submit))
	m.HandleFunc("GET /requests/{id}", s.page(s.detail))
	m.HandleFunc("POST /requests/{id}/{action}", s.form(s.act))
	m.HandleFunc("GET /approvals", s.page(s.list(s.approvalsView)))
	m.HandleFunc("GET /admin/grants", s.page(s.list(s.grantsView)))
	m.HandleFunc("GET /admin/requests", s.page(s.allRequests))
	m.HandleFunc("/", s.notFound)
	s.mux = m
}

// ServeHTTP sets the security headers and serves the UI.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
	if s.secure(r) {
		// Browsers ignore it over plain HTTP; behind a TLS proxy it holds.
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	s.mux.ServeHTTP(w, r)
}

// handler is a page or form handler of a signed-in principal. A returned
// error is rendered by the caller.
type handler func(w http.ResponseWriter, r *http.Request, sess session) error

// page serves h to a signed-in principal; anyone else is sent to the
// sign-in page. An authenticator that fails (rather than refusing the
// token) is an internal error: the session stays.
func (s *Server) page(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, err := s.session(r)
		if err == nil {
			err = h(w, r, sess)
		}
		if err != nil {
			s.fail(w, r, sess, err, nil)
		}
	}
}

// form serves a state-changing POST: the request must come from this
// origin and carry the session's CSRF token, or it is refused with 403
// before anything else happens.
func (s *Server) form(h handler) http.HandlerFunc {
	page := s.page(h)
	return func(w http.ResponseWriter, r *http.Request) {
		if s.checkForm(w, r) {
			page(w, r)
		}
	}
}

// toSignin sends a visitor without a valid session to the sign-in page,
// clearing a cookie that no longer signs in.
func (s *Server) toSignin(w http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, errNoSession) {
		s.clearSession(w, r)
	}
	next := ""
	if r.Method == http.MethodGet {
		next = r.URL.RequestURI()
	}
	http.Redirect(w, r, signinURL(next), http.StatusSeeOther)
}

// fail renders err: a step-up redirect when the StepUp hook asks for one,
// the sign-in page for a missing or refused session, and otherwise the
// error on the page that v describes (an error page when v is nil), with
// the status of the error's kind.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, sess session, err error, v *view) {
	if s.cfg.StepUp != nil {
		if u := s.cfg.StepUp(r, err); u != "" {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, u, http.StatusSeeOther)
				return
			}
			s.render(w, r, http.StatusUnauthorized, "stepup", &view{Title: "Sign in again", Session: sess, StepUpURL: u})
			return
		}
	}
	status, _ := httpapi.Status(err)
	if status == http.StatusUnauthorized {
		s.toSignin(w, r, err)
		return
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		s.cfg.Logger.Error("page failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "Internal error; the server log has details. Nothing was changed by this page."
	}
	name := "error"
	if v == nil {
		v = &view{Title: http.StatusText(status)}
	} else {
		name = v.template
	}
	v.Session, v.Error, v.Status = sess, msg, status
	s.render(w, r, status, name, v)
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	sess, err := s.session(r)
	if err != nil {
		sess = session{}
	}
	s.render(w, r, http.StatusNotFound, "error", &view{Title: "Not found", Session: sess, Status: http.StatusNotFound,
		Error: "There is no page at this address."})
}

// render executes the page template name with v and sends it, uncached.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, v *view) {
	t, ok := s.pages[name]
	if !ok {
		s.cfg.Logger.Error("no such template", "name", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	v.Now = s.cfg.Clock.Now()
	v.Version = s.version
	if v.Session.token != "" {
		v.CSRF = s.csrfToken(v.Session.token)
	}
	var buf bytes.Buffer
	if err := t.execute(&buf, v); err != nil {
		s.cfg.Logger.Error("render page", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) now() time.Time { return s.cfg.Clock.Now() }
