package main

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest/oidctest"
	"github.com/lapse-access/lapse/webui"
)

// webBrowser is a browser without JavaScript: an HTTP client with a cookie
// jar that sends forms as a browser on Lapse's origin does.
type webBrowser struct {
	t      *testing.T
	origin string
	jar    *cookiejar.Jar
	// follow follows redirects; once does not, to read an answer itself.
	follow, once *http.Client
}

func newWebBrowser(t *testing.T, origin string) *webBrowser {
	jar, _ := cookiejar.New(nil)
	return &webBrowser{t: t, origin: origin, jar: jar,
		follow: &http.Client{Jar: jar, Timeout: 30 * time.Second},
		once: &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}}
}

// page is an answer as the test reads it.
type page struct {
	status int
	url    *url.URL
	header http.Header
	body   string
}

func (b *webBrowser) do(c *http.Client, req *http.Request) page {
	b.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Request.URL, resp.Header, string(body)}
}

// get loads u (absolute, or a path on Lapse) and follows redirects.
func (b *webBrowser) get(u string) page {
	b.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = b.origin + u
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(b.follow, req)
}

// post sends a form to a path on Lapse from a page of Lapse's, without
// following the answer's redirect.
func (b *webBrowser) post(path string, form url.Values) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.origin+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.origin)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(b.once, req)
}

// session is the value of Lapse's session cookie in the jar, "" if none.
func (b *webBrowser) session() string {
	u, _ := url.Parse(b.origin)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == webui.CookieName {
			return c.Value
		}
	}
	return ""
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf loads path and returns the CSRF token of its forms.
func (b *webBrowser) csrf(path string) string {
	b.t.Helper()
	p := b.get(path)
	m := csrfRE.FindStringSubmatch(p.body)
	if m == nil {
		b.t.Fatalf("no form on %s (%d at %s):\n%s", path, p.status, p.url, p.body)
	}
	return m[1]
}

// signInAtProvider follows start (a sign-in link of Lapse's) to the
// provider's login form, signs in there as user, and returns the page the
// browser lands on.
func (b *webBrowser) signInAtProvider(op *oidctest.Provider, start, user string) page {
	b.t.Helper()
	form := b.get(start)
	if form.status != http.StatusOK || !strings.HasPrefix(form.url.String(), op.Issuer+"/login") {
		b.t.Fatalf("%s led to %s (%d): %s", start, form.url, form.status, form.body)
	}
	req, _ := http.NewRequest(http.MethodPost, op.Issuer+"/login",
		strings.NewReader(url.Values{"id": {form.url.Query().Get("authRequestID")}, "username": {user}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(b.follow, req)
}

var whoamiRE = regexp.MustCompile(`id="whoami">([^<]*)<`)

// whoami is the user a UI page says is signed in, "" for none.
func whoami(p page) string {
	if m := whoamiRE.FindStringSubmatch(p.body); m != nil {
		return m[1]
	}
	return ""
}

// A pasted API token signs the browser in with a server-side web session:
// the cookie holds the session's token, never the static token, and
// signing out revokes the session, so a copy of the cookie is refused.
func TestWebSignInExchangesToken(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server")
	}
	s := startApp(t, writeConfig(t, t.TempDir()))
	b := newWebBrowser(t, s.url)

	csrf := b.csrf("/signin")
	if p := b.post("/signin", url.Values{"csrf": {csrf}, "token": {"tok-nobody"}}); p.status != http.StatusUnauthorized || b.session() != "" {
		t.Fatalf("unknown token: %d, cookie %q", p.status, b.session())
	}
	p := b.post("/signin", url.Values{"csrf": {csrf}, "token": {"tok-alice"}})
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == webui.CookieName {
			cookie = c
		}
	}
	if p.status != http.StatusSeeOther || cookie == nil {
		t.Fatalf("sign-in: %d, no session cookie: %s", p.status, p.body)
	}
	if cookie.Value == "tok-alice" || !strings.HasPrefix(cookie.Value, "lapse_s_") || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie %+v: want an HttpOnly, SameSite=Lax web session token, not the API token", cookie)
	}
	ctx := context.Background()
	sp, err := s.identity.AuthenticateToken(ctx, cookie.Value)
	if err != nil || sp.Name != "alice" || sp.Session == "" {
		t.Fatalf("the cookie's token: %+v, %v", sp, err)
	}
	sessions, err := s.identity.Sessions(ctx, sp, "alice")
	if err != nil || len(sessions) != 1 || sessions[0].Client != "web" || sessions[0].ID != sp.Session {
		t.Fatalf("alice's sessions: %+v, %v", sessions, err)
	}
	if home := b.get("/"); home.status != http.StatusOK || whoami(home) != "alice" {
		t.Fatalf("signed in, / is %d for %q", home.status, whoami(home))
	}

	// Sign out, keeping a copy of the cookie.
	old := b.session()
	out := b.post("/signout", url.Values{"csrf": {b.csrf("/")}})
	if out.status != http.StatusSeeOther || b.session() != "" {
		t.Fatalf("sign-out: %d, cookie %q left", out.status, b.session())
	}
	if _, err := s.identity.AuthenticateToken(ctx, old); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("the signed-out session's token: %v", err)
	}
	replay := newWebBrowser(t, s.url)
	u, _ := url.Parse(s.url)
	replay.jar.SetCookies(u, []*http.Cookie{{Name: webui.CookieName, Value: old}})
	if p := replay.get("/"); whoami(p) != "" || p.url.Path != "/signin" {
		t.Fatalf("the old cookie after sign-out reached %s as %q", p.url, whoami(p))
	}
	evs, err := s.store.ListAudit(ctx, lapse.AuditFilter{User: "alice", Type: lapse.EvLogout})
	if err != nil || len(evs) != 1 {
		t.Fatalf("session.logout records: %d, %v", len(evs), err)
	}
}

// ssoApp runs the server `lapse serve` wires, with single sign-on at a
// test provider and the step-up policy on the prod database.
func ssoApp(t *testing.T) (*appServer, *oidctest.Provider) {
	t.Helper()
	op := ssoProvider(t)
	s := startApp(t, writeSSOConfig(t, t.TempDir(), op.Issuer), func(url string) {
		op.AddClient("lapse", ssoSecret, url+"/auth/callback")
	})
	return s, op
}

var ssoLinkRE = regexp.MustCompile(`href="([^"]+)" id="sso"`)

// signInWithSSO clicks "Sign in with SSO" and signs in at the provider as
// user; it returns the page the browser lands on.
func signInWithSSO(t *testing.T, b *webBrowser, op *oidctest.Provider, user string) page {
	t.Helper()
	signin := b.get("/")
	m := ssoLinkRE.FindStringSubmatch(signin.body)
	if signin.url.Path != "/signin" || m == nil {
		t.Fatalf("signed out, / led to %s without a Sign in with SSO link:\n%s", signin.url, signin.body)
	}
	return b.signInAtProvider(op, html.UnescapeString(m[1]), user)
}

// Signing in through the identity provider lands on the UI, signed in.
func TestWebSSOSignIn(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server and a provider")
	}
	s, op := ssoApp(t)
	b := newWebBrowser(t, s.url)
	home := signInWithSSO(t, b, op, "u-alice")
	if home.status != http.StatusOK || home.url.String() != s.url+"/" || whoami(home) != "alice@example.com" {
		t.Fatalf("after sign-in: %d at %s as %q\n%s", home.status, home.url, whoami(home), home.body)
	}
	p, err := s.identity.AuthenticateToken(context.Background(), b.session())
	if err != nil || p.Name != "alice@example.com" || p.MFA.Present != lapse.FlagTrue || p.Session == "" {
		t.Fatalf("the cookie's session: %+v, %v", p, err)
	}
	// The provider's groups apply: alice asks for access from the UI.
	form := url.Values{"csrf": {b.csrf("/requests/new")}, "target": {"app/read"}, "duration": {"30m"}, "reason": {"INC-7"}}
	if r := b.post("/requests", form); r.status != http.StatusOK || !strings.Contains(r.body, "Access granted.") {
		t.Fatalf("request from the UI: %d\n%s", r.status, r.body)
	}
}

// A policy that wants a second factor from the last 5 minutes refuses an
// older sign-in; the UI sends the browser to sign in again with max_age,
// and then the same form succeeds.
func TestWebStepUp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server and a provider")
	}
	s, op := ssoApp(t)
	stale := oidctest.User{ID: "u-alice", Email: "alice@example.com", Groups: []string{"engineering"}, AMR: []string{"pwd", "otp"}, AuthAge: 10 * time.Minute}
	op.AddUser(stale)
	b := newWebBrowser(t, s.url)
	if home := signInWithSSO(t, b, op, "u-alice"); whoami(home) != "alice@example.com" {
		t.Fatalf("sign-in landed at %s (%d)", home.url, home.status)
	}
	first := b.session()
	ask := func() page {
		t.Helper()
		return b.post("/requests", url.Values{"csrf": {b.csrf("/requests/new")}, "target": {"db/admin"}, "duration": {"30m"}, "reason": {"INC-8"}})
	}
	refused := ask()
	link := regexp.MustCompile(`href="([^"]+)" id="stepup-link"`).FindStringSubmatch(refused.body)
	if refused.status != http.StatusUnauthorized || link == nil || !strings.Contains(refused.body, "Nothing was done") {
		t.Fatalf("prod request with a 10-minute-old factor: %d\n%s", refused.status, refused.body)
	}
	start := html.UnescapeString(link[1])
	if u, err := url.Parse(start); err != nil || u.Path != "/auth/login" || u.Query().Get("max_age") != "300" {
		t.Fatalf("step-up link %q: want /auth/login with max_age=300", start)
	}
	if rs, err := s.store.ListRequests(context.Background(), lapse.RequestFilter{User: "alice@example.com"}); err != nil || len(rs) != 0 {
		t.Fatalf("the refused form stored %d requests (%v)", len(rs), err)
	}

	// Alice presents her second factor again at the provider.
	op.AddUser(oidctest.User{ID: "u-alice", Email: "alice@example.com", Groups: []string{"engineering"}, AMR: []string{"pwd", "otp"}})
	back := b.signInAtProvider(op, start, "u-alice")
	if back.url.String() != s.url+"/" || whoami(back) != "alice@example.com" {
		t.Fatalf("after signing in again: %d at %s", back.status, back.url)
	}
	// The provider's library reads prompt=login as max_age=0: a sign-in
	// right now, however recent the last.
	if maxAge, prompt := op.LastAuthRequest(); maxAge == nil || *maxAge > 300 || len(prompt) == 0 || prompt[0] != "login" {
		t.Errorf("the provider was asked for max_age %d, prompt %v; want at most 300 and login", deref(maxAge), prompt)
	}
	if b.session() == first || b.session() == "" {
		t.Fatal("signing in again kept the old session")
	}
	done := ask()
	if done.status != http.StatusSeeOther || !strings.Contains(done.header.Get("Location"), "done=submitted") {
		t.Fatalf("prod request after step-up: %d\n%s", done.status, done.body)
	}
	if p := b.get(done.header.Get("Location")); !strings.Contains(p.body, `id="state">pending<`) {
		t.Fatalf("the request after step-up:\n%s", p.body)
	}
}

// deref shows a missing number as -1.
func deref(n *uint) int64 {
	if n == nil {
		return -1
	}
	return int64(*n)
}
