package webui_test

import (
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/webui"
)

func cookieOf(r response, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// signinForm loads the sign-in page and returns its form token and the
// cookie it is bound to.
func (s *stack) signinForm(t *testing.T) (string, *http.Cookie) {
	t.Helper()
	page := s.get(t, "", "/signin")
	wantPage(t, page, http.StatusOK, `name="token"`)
	m := csrfRE.FindStringSubmatch(page.body)
	c := cookieOf(page, "lapse_signin")
	if m == nil || c == nil {
		t.Fatalf("sign-in page without its token or cookie:\n%s", page.body)
	}
	return m[1], c
}

func (s *stack) signin(t *testing.T, form url.Values, cookie *http.Cookie, headers map[string]string) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.url+"/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.url)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	return do(t, req)
}

func TestSignIn(t *testing.T) {
	s := newStack(t)
	wantRedirect(t, s.get(t, "", "/approvals"), "/signin?next=%2Fapprovals")
	wantRedirect(t, s.get(t, "", "/"), "/signin")

	csrf, cookie := s.signinForm(t)
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Errorf("sign-in cookie: %+v", cookie)
	}
	for _, tc := range []struct {
		name    string
		form    url.Values
		cookie  *http.Cookie
		headers map[string]string
		status  int
		message string
	}{
		{"wrong token", url.Values{"csrf": {csrf}, "token": {"tok-mallory"}}, cookie, nil, 401, "not valid"},
		{"no token", url.Values{"csrf": {csrf}, "token": {"  "}}, cookie, nil, 400, "Paste your API token"},
		{"token that cannot be a cookie", url.Values{"csrf": {csrf}, "token": {"a;b"}}, cookie, nil, 400, "not an API token"},
		{"no form token", url.Values{"token": {"tok-alice"}}, cookie, nil, 403, "security token"},
		{"form token without its cookie", url.Values{"csrf": {csrf}, "token": {"tok-alice"}}, nil, nil, 403, "security token"},
		{"another origin", url.Values{"csrf": {csrf}, "token": {"tok-alice"}}, cookie, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403, "another"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.signin(t, tc.form, tc.cookie, tc.headers)
			wantPage(t, r, tc.status, tc.message)
			if c := cookieOf(r, webui.CookieName); c != nil && c.Value != "" {
				t.Fatalf("refused sign-in set a session: %+v", c)
			}
			if strings.Contains(r.body, "tok-") {
				t.Fatal("the page repeats the token")
			}
		})
	}

	t.Run("valid token", func(t *testing.T) {
		r := s.signin(t, url.Values{"csrf": {csrf}, "token": {" tok-alice\n"}, "next": {"/approvals"}}, cookie, nil)
		wantRedirect(t, r, "/approvals")
		c := cookieOf(r, webui.CookieName)
		if c == nil || c.Value != "tok-alice" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure || c.MaxAge <= 0 {
			t.Fatalf("session cookie: %+v", c)
		}
	})
	t.Run("behind a TLS proxy", func(t *testing.T) {
		r := s.signin(t, url.Values{"csrf": {csrf}, "token": {"tok-alice"}}, cookie, map[string]string{"X-Forwarded-Proto": "https"})
		if c := cookieOf(r, webui.CookieName); c == nil || !c.Secure {
			t.Fatalf("session cookie behind a TLS proxy: %+v", c)
		}
		if r.header.Get("Strict-Transport-Security") == "" {
			t.Fatal("no HSTS behind a TLS proxy")
		}
	})
	t.Run("next elsewhere goes home", func(t *testing.T) {
		for _, next := range []string{"//evil.example/x", "https://evil.example", "/\\evil.example", "javascript:alert(1)"} {
			r := s.signin(t, url.Values{"csrf": {csrf}, "token": {"tok-alice"}, "next": {next}}, cookie, nil)
			wantRedirect(t, r, "/")
			if r.location() != "/" {
				t.Errorf("next %q: redirected to %q", next, r.location())
			}
		}
	})
	t.Run("signed in skips the form", func(t *testing.T) {
		wantRedirect(t, s.get(t, "alice", "/signin?next=/approvals"), "/approvals")
	})
	t.Run("stale cookie is cleared", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, s.url+"/", nil)
		req.AddCookie(&http.Cookie{Name: webui.CookieName, Value: "tok-gone"})
		r := do(t, req)
		wantRedirect(t, r, "/signin")
		if c := cookieOf(r, webui.CookieName); c == nil || c.MaxAge >= 0 {
			t.Fatalf("stale session cookie not cleared: %+v", c)
		}
	})
}

func TestSSOLinkAndSecureCookie(t *testing.T) {
	s := newStack(t, func(c *webui.Config) { c.SSOLoginURL = "/auth/login"; c.Loopback = false })
	csrf, cookie := s.signinForm(t)
	if !cookie.Secure {
		t.Error("sign-in cookie without Secure off loopback")
	}
	wantPage(t, s.get(t, "", "/signin"), http.StatusOK, `href="/auth/login"`, "Sign in with SSO")
	r := s.signin(t, url.Values{"csrf": {csrf}, "token": {"tok-alice"}}, cookie, nil)
	if c := cookieOf(r, webui.CookieName); c == nil || !c.Secure {
		t.Fatalf("session cookie off loopback: %+v", c)
	}
	if plain := newStack(t); strings.Contains(plain.get(t, "", "/signin").body, "SSO") {
		t.Error("SSO link shown without an SSO login URL")
	}
}

func TestSignOut(t *testing.T) {
	s := newStack(t)
	r := s.post(t, "alice", "/signout", nil, nil)
	wantRedirect(t, r, "/signin")
	if c := cookieOf(r, webui.CookieName); c == nil || c.MaxAge >= 0 || c.Value != "" {
		t.Fatalf("session cookie not cleared: %+v", c)
	}
	if got := s.loggedOut(); len(got) != 1 || got[0] != "tok-alice" {
		t.Fatalf("logout hook saw %v", got)
	}
	r = s.post(t, "alice", "/signout", url.Values{"csrf": {"forged"}}, nil)
	wantPage(t, r, http.StatusForbidden)
	if c := cookieOf(r, webui.CookieName); c != nil {
		t.Fatalf("forged sign-out touched the cookie: %+v", c)
	}
	if len(s.loggedOut()) != 1 {
		t.Fatalf("forged sign-out called the logout hook")
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := newStack(t)
	req := s.submit(t, "alice", "db", "admin")
	for _, path := range []string{"/signin", "/", "/requests/new", "/requests/" + req.ID, "/approvals", "/admin/grants", "/nope", "/static/app.js"} {
		r := s.get(t, "carol", path)
		h := r.header
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP allows inline code: %q", path, csp)
		}
		for k, v := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"} {
			if h.Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", path, k, h.Get(k), v)
			}
		}
		if strings.HasPrefix(path, "/static/") {
			continue
		}
		if h.Get("Cache-Control") != "no-store" || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
			t.Errorf("%s: Cache-Control %q, Content-Type %q", path, h.Get("Cache-Control"), h.Get("Content-Type"))
		}
		if regexp.MustCompile(`<script>|<script [^>]*>[^<]|<style|\sstyle="|\son[a-z]+="`).MatchString(r.body) {
			t.Errorf("%s: inline script or style in the page", path)
		}
	}
}

func TestStatic(t *testing.T) {
	s := newStack(t)
	r := s.get(t, "", "/signin")
	m := regexp.MustCompile(`src="(/static/app\.js\?v=[0-9a-f]+)"`).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no versioned script on the page:\n%s", r.body)
	}
	js := s.get(t, "", m[1])
	wantPage(t, js, http.StatusOK, "countdown")
	if ct := js.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("app.js served as %q", ct)
	}
	req, _ := http.NewRequest(http.MethodGet, s.url+m[1], nil)
	req.Header.Set("If-None-Match", js.header.Get("ETag"))
	if r := do(t, req); r.status != http.StatusNotModified {
		t.Errorf("revalidation: %d, want 304", r.status)
	}
	if r := s.get(t, "", "/static/nope.js"); r.status != http.StatusNotFound {
		t.Errorf("unknown asset: %d", r.status)
	}
	if r := s.get(t, "", "/static/app.css"); !strings.HasPrefix(r.header.Get("Content-Type"), "text/css") {
		t.Errorf("app.css served as %q", r.header.Get("Content-Type"))
	}
}

// Every state-changing form refuses a POST without the session's token, or
// from another site, with 403, and changes nothing.
func TestCSRFRefused(t *testing.T) {
	s := newStack(t)
	pending := s.submit(t, "alice", "db", "admin")
	active := s.submit(t, "alice", "app", "read")
	forms := []struct {
		user, path string
		form       url.Values
	}{
		{"alice", "/requests", url.Values{"target": {"app/read"}, "duration": {"1h"}, "reason": {"x"}}},
		{"bob", "/requests/" + pending.ID + "/approve", nil},
		{"bob", "/requests/" + pending.ID + "/deny", url.Values{"reason": {"no"}}},
		{"alice", "/requests/" + pending.ID + "/cancel", nil},
		{"alice", "/requests/" + active.ID + "/release", nil},
		{"alice", "/requests/" + active.ID + "/extend", url.Values{"duration": {"1h"}, "reason": {"more"}}},
		{"alice", "/requests/" + active.ID + "/credentials", nil},
		{"carol", "/requests/" + active.ID + "/revoke", url.Values{"reason": {"x"}}},
		{"alice", "/signout", nil},
	}
	bobToken := s.csrf(t, "bob")
	for _, f := range forms {
		for _, tc := range []struct {
			name    string
			csrf    string
			headers map[string]string
			message string
		}{
			{"no token", "", nil, "security token"},
			{"wrong token", "AAAA" + s.csrf(t, f.user)[4:], nil, "security token"},
			{"another session's token", bobToken, nil, "security token"},
			{"another origin", s.csrf(t, f.user), map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": ""}, "another origin"},
			{"cross-site fetch", s.csrf(t, f.user), map[string]string{"Sec-Fetch-Site": "cross-site"}, "another site"},
			{"same-site fetch", s.csrf(t, f.user), map[string]string{"Sec-Fetch-Site": "same-site"}, "another site"},
			{"opaque origin", s.csrf(t, f.user), map[string]string{"Origin": "null", "Sec-Fetch-Site": ""}, "unknown origin"},
		} {
			if tc.name == "another session's token" && f.user == "bob" {
				continue
			}
			t.Run(f.path+"/"+tc.name, func(t *testing.T) {
				before := s.state(t)
				form := url.Values{}
				for k, v := range f.form {
					form[k] = v
				}
				form.Set("csrf", tc.csrf)
				r := s.post(t, f.user, f.path, form, tc.headers)
				wantPage(t, r, http.StatusForbidden, tc.message, "Nothing was changed")
				if c := cookieOf(r, webui.CookieName); c != nil {
					t.Errorf("refused form touched the session cookie")
				}
				s.unchanged(t, before)
			})
		}
	}
	if got := s.loggedOut(); len(got) != 0 {
		t.Fatalf("refused sign-outs called the logout hook: %v", got)
	}
	// Under Referrer-Policy no-referrer a browser sends "Origin: null" with
	// its same-origin forms; Sec-Fetch-Site tells.
	r := s.post(t, "alice", "/requests/"+active.ID+"/extend", url.Values{"duration": {"1h"}, "reason": {"more"}},
		map[string]string{"Origin": "null", "Sec-Fetch-Site": "same-origin"})
	wantPage(t, r, http.StatusOK, "Extended.")
	// Without the browser's headers (a script, say) the token still counts.
	r = s.post(t, "alice", "/requests/"+pending.ID+"/cancel", nil, map[string]string{"Origin": "", "Sec-Fetch-Site": ""})
	wantRedirect(t, r, "/requests/"+pending.ID+"?done=cancelled")
	// GET never changes anything.
	before := s.state(t)
	for _, action := range []string{"release", "credentials", "approve", "revoke"} {
		if r := s.get(t, "alice", "/requests/"+active.ID+"/"+action); r.status != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", action, r.status)
		}
	}
	s.unchanged(t, before)
}

// Alice asks for access that needs an approval, bob approves it, alice
// takes the credentials once and releases the access.
func TestRequestApproveCredentialsRelease(t *testing.T) {
	s := newStack(t)
	wantPage(t, s.get(t, "alice", "/requests/new"), http.StatusOK, `value="db/admin"`, "1 approval needed", `value="app/read"`, "approved automatically")

	r := s.post(t, "alice", "/requests", url.Values{"target": {"db/admin"}, "duration": {"30m"}, "reason": {"INC-4411 <b>bold</b>"}, "ticket": {"INC-4411"}}, nil)
	wantRedirect(t, r, "/requests/")
	id := strings.TrimPrefix(strings.Split(r.location(), "?")[0], "/requests/")
	page := s.get(t, "alice", r.location())
	wantPage(t, page, http.StatusOK, "Request submitted.", `id="state">pending`, "INC-4411 &lt;b&gt;bold&lt;/b&gt;", "request.created", `id="cancel"`)
	if strings.Contains(page.body, "<b>bold") {
		t.Fatal("the reason is not escaped")
	}
	wantPage(t, s.get(t, "alice", "/"), http.StatusOK, id, "pending")
	if strings.Contains(s.get(t, "alice", "/approvals").body, id) {
		t.Fatal("alice is asked to approve her own request")
	}

	wantPage(t, s.get(t, "bob", "/approvals"), http.StatusOK, id, "alice asks for db / admin", `data-action="approve"`)
	r = s.post(t, "bob", "/requests/"+id+"/approve", url.Values{"comment": {"ok for INC-4411"}, "from": {"approvals"}}, nil)
	wantRedirect(t, r, "/approvals?done=approved")
	wantPage(t, s.get(t, "bob", r.location()), http.StatusOK, "Approval recorded.", "Nothing waits for your decision")
	// Bob sees the timeline but no credentials button.
	page = s.get(t, "bob", "/requests/"+id)
	wantPage(t, page, http.StatusOK, "request.approved", "ok for INC-4411")
	if strings.Contains(page.body, "show-credentials") {
		t.Fatal("the approver is offered the requester's credentials")
	}

	page = s.get(t, "alice", "/requests/"+id)
	wantPage(t, page, http.StatusOK, `id="state">active`, `class="countdown"`, `id="show-credentials"`, `id="release"`)
	r = s.post(t, "alice", "/requests/"+id+"/credentials", nil, nil)
	wantPage(t, r, http.StatusOK, "Your credentials", "Shown once", `data-replace-url="/requests/`+id+`"`)
	m := regexp.MustCompile(`<pre id="credential-value">([^<]+)</pre>`).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no credential on the page:\n%s", r.body)
	}
	if _, err := s.tok.Verify(html.UnescapeString(m[1])); err != nil {
		t.Fatalf("the credential shown is not a valid token: %v", err)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Fatal("credentials page may be cached")
	}
	if strings.Contains(s.get(t, "alice", "/requests/"+id).body, m[1]) {
		t.Fatal("the credential is shown again")
	}
	before := s.state(t)
	r = s.post(t, "alice", "/requests/"+id+"/credentials", nil, nil)
	wantPage(t, r, http.StatusGone, "handed out once")
	s.unchanged(t, before)

	r = s.post(t, "alice", "/requests/"+id+"/release", nil, nil)
	wantRedirect(t, r, "/requests/"+id+"?done=released")
	wantPage(t, s.get(t, "alice", r.location()), http.StatusOK, "Access released.", `id="state">ended`, "grant.released")
	if got := s.request(t, id); got.State != lapse.StateEnded || got.EndReason != lapse.EndReleased {
		t.Fatalf("after release: %s %s", got.State, got.EndReason)
	}
}

// Access approved at once hands its credentials over on the page the
// form returns.
func TestAutoApprovedShowsCredentials(t *testing.T) {
	s := newStack(t)
	r := s.post(t, "alice", "/requests", url.Values{"target": {"app/read"}, "duration": {"1h"}, "reason": {"deploy"}}, nil)
	wantPage(t, r, http.StatusOK, "Access granted.", "Your credentials", `id="state">active`, `data-replace-url="/requests/`)
	if r.header.Get("Cache-Control") != "no-store" {
		t.Fatal("credentials page may be cached")
	}
	id := regexp.MustCompile(`data-replace-url="/requests/([a-z0-9]+)"`).FindStringSubmatch(r.body)[1]
	if s.request(t, id).CredentialsWaiting {
		t.Fatal("credentials shown and still waiting")
	}
	if strings.Contains(s.get(t, "alice", "/requests/"+id).body, "show-credentials") {
		t.Fatal("credentials offered a second time")
	}

	// An extension approved at once hands over fresh credentials too.
	r = s.post(t, "alice", "/requests/"+id+"/extend", url.Values{"duration": {"30m"}, "reason": {"still deploying"}}, nil)
	wantPage(t, r, http.StatusOK, "Extended.", "Your credentials")
	if got := s.request(t, id); got.Duration.Minutes() != 90 && got.ExpiresAt.Sub(got.ActivatedAt).Minutes() != 90 {
		t.Fatalf("after extension: activated %s, expires %s", got.ActivatedAt, got.ExpiresAt)
	}
}

func TestExtensionNeedsApproval(t *testing.T) {
	s := newStack(t)
	req := s.submit(t, "alice", "db", "admin")
	if _, err := s.broker.Approve(t.Context(), lapse.Principal{Name: "bob", Groups: users["bob"]}, req.ID, ""); err != nil {
		t.Fatal(err)
	}
	r := s.post(t, "alice", "/requests/"+req.ID+"/extend", url.Values{"duration": {"15m"}, "reason": {"more"}}, nil)
	wantRedirect(t, r, "/requests/"+req.ID+"?done=asked")
	wantPage(t, s.get(t, "alice", r.location()), http.StatusOK, "waits for approval", "Extension asked")
	wantPage(t, s.get(t, "bob", "/approvals"), http.StatusOK, "Approve extension", "more")
	r = s.post(t, "bob", "/requests/"+req.ID+"/deny", url.Values{"reason": {"enough"}, "from": {"approvals"}}, nil)
	wantRedirect(t, r, "/approvals?done=denied")
	if got := s.request(t, req.ID); got.State != lapse.StateActive || got.Extension != nil {
		t.Fatalf("after denying the extension: %s %+v", got.State, got.Extension)
	}
}

func TestAdminGrants(t *testing.T) {
	s := newStack(t)
	a := s.submit(t, "alice", "app", "read")
	d := s.submit(t, "dave", "app", "read")
	wantPage(t, s.get(t, "alice", "/admin/grants"), http.StatusForbidden, "only admins and auditors")
	if strings.Contains(s.get(t, "alice", "/").body, "/admin/grants") {
		t.Fatal("the admin view is offered to a non-admin")
	}
	page := s.get(t, "carol", "/admin/grants")
	wantPage(t, page, http.StatusOK, a.ID, d.ID, "alice", "dave", `class="countdown"`, `data-action="revoke"`)

	before := s.state(t)
	r := s.post(t, "carol", "/requests/"+a.ID+"/revoke", url.Values{"reason": {" "}, "from": {"grants"}}, nil)
	wantPage(t, r, http.StatusBadRequest, "reason is required", d.ID)
	s.unchanged(t, before)

	r = s.post(t, "carol", "/requests/"+a.ID+"/revoke", url.Values{"reason": {"left the team"}, "from": {"grants"}}, nil)
	wantRedirect(t, r, "/admin/grants?done=revoked")
	page = s.get(t, "carol", r.location())
	wantPage(t, page, http.StatusOK, "Access revoked.", d.ID)
	if strings.Contains(page.body, a.ID) {
		t.Fatal("a revoked grant is still listed")
	}
	if got := s.request(t, a.ID); got.State != lapse.StateEnded || got.EndReason != lapse.EndRevoked || got.Note != "left the team" {
		t.Fatalf("after revoke: %s %s %q", got.State, got.EndReason, got.Note)
	}
}

// An auditor reads every request and every grant, and changes nothing:
// the pages offer no action, and the forms are refused.
func TestAuditorReadsOnly(t *testing.T) {
	s := newStack(t)
	pending := s.submit(t, "alice", "db", "admin")
	active := s.submit(t, "dave", "app", "read")
	mine := s.get(t, "audrey", "/")
	wantPage(t, mine, http.StatusOK, `href="/admin/requests"`, `href="/admin/grants"`, "auditor")
	wantPage(t, s.get(t, "audrey", "/admin/requests?state=all"), http.StatusOK, pending.ID, active.ID, "<td>alice</td>", "<td>dave</td>")
	grants := s.get(t, "audrey", "/admin/grants")
	wantPage(t, grants, http.StatusOK, active.ID, "dave")
	detail := s.get(t, "audrey", "/requests/"+pending.ID)
	wantPage(t, detail, http.StatusOK, "request.created")
	for _, page := range []response{grants, detail, s.get(t, "audrey", "/requests/"+active.ID)} {
		for _, action := range []string{`data-action="revoke"`, `data-action="approve"`, `data-action="deny"`, `id="cancel"`, `id="release"`} {
			if strings.Contains(page.body, action) {
				t.Errorf("an auditor is offered %s:\n%s", action, page.body)
			}
		}
	}
	for _, tc := range []struct {
		path    string
		form    url.Values
		message string
	}{
		{"/requests/" + active.ID + "/revoke", url.Values{"reason": {"audit"}, "from": {"grants"}}, "only an admin"},
		{"/requests/" + pending.ID + "/approve", nil, ""},
		{"/requests/" + pending.ID + "/deny", url.Values{"reason": {"audit"}}, ""},
		{"/requests/" + pending.ID + "/cancel", nil, "only alice or an admin"},
		{"/requests/" + active.ID + "/release", nil, "only dave"},
	} {
		before := s.state(t)
		wantPage(t, s.post(t, "audrey", tc.path, tc.form, nil), http.StatusForbidden, tc.message, `role="alert"`)
		s.unchanged(t, before)
	}
	// Requesters see neither list, nor links to them.
	wantPage(t, s.get(t, "alice", "/admin/requests"), http.StatusForbidden, "only admins and auditors")
	if body := s.get(t, "alice", "/").body; strings.Contains(body, "/admin/") {
		t.Error("the lists of everyone's requests are offered to a requester")
	}
	// An approver is offered the decision; an admin may deny, and revoke.
	wantPage(t, s.get(t, "bob", "/requests/"+pending.ID), http.StatusOK, `data-action="approve"`, `data-action="deny"`)
	wantPage(t, s.get(t, "carol", "/requests/"+active.ID), http.StatusOK, `data-action="revoke"`)
}

// Bad input and refused actions show the broker's error with its status,
// and change nothing.
func TestRefusedActions(t *testing.T) {
	s := newStack(t)
	pending := s.submit(t, "alice", "db", "admin")
	active := s.submit(t, "alice", "app", "read")
	for _, tc := range []struct {
		name, user, path string
		form             url.Values
		status           int
		message          string
	}{
		{"no target", "alice", "/requests", url.Values{"duration": {"1h"}, "reason": {"x"}}, 400, "choose a resource and role"},
		{"unknown resource", "alice", "/requests", url.Values{"target": {"nope/read"}, "duration": {"1h"}, "reason": {"x"}}, 404, "nope"},
		{"bad duration", "alice", "/requests", url.Values{"target": {"app/read"}, "duration": {"soon"}, "reason": {"my reason"}}, 400, "cannot parse"},
		{"negative duration", "alice", "/requests", url.Values{"target": {"app/read"}, "duration": {"-1h"}, "reason": {"x"}}, 400, "positive"},
		{"too long", "alice", "/requests", url.Values{"target": {"app/read"}, "duration": {"5h"}, "reason": {"x"}}, 400, "exceeds the maximum"},
		{"no reason", "alice", "/requests", url.Values{"target": {"app/read"}, "duration": {"1h"}}, 400, "reason is required"},
		{"not a requester", "bob", "/requests", url.Values{"target": {"app/read"}, "duration": {"1h"}, "reason": {"x"}}, 403, "denied"},
		{"own approval", "alice", "/requests/" + pending.ID + "/approve", nil, 403, "cannot approve their own"},
		{"not an approver", "dave", "/requests/" + pending.ID + "/approve", nil, 403, ""},
		{"deny without reason", "bob", "/requests/" + pending.ID + "/deny", nil, 400, "reason is required"},
		{"release a pending request", "alice", "/requests/" + pending.ID + "/release", nil, 409, "cannot release"},
		{"approve an active grant", "bob", "/requests/" + active.ID + "/approve", nil, 403, ""},
		{"cancel an active grant", "alice", "/requests/" + active.ID + "/cancel", nil, 409, "cannot cancel"},
		{"release another's", "dave", "/requests/" + active.ID + "/release", nil, 403, "only alice"},
		{"revoke another's", "dave", "/requests/" + active.ID + "/revoke", url.Values{"reason": {"x"}}, 403, "only an admin"},
		{"admin takes credentials", "carol", "/requests/" + pending.ID + "/credentials", nil, 403, "for alice only"},
		{"extend by nothing", "alice", "/requests/" + active.ID + "/extend", url.Values{"duration": {""}, "reason": {"x"}}, 400, "duration is required"},
		{"extend beyond the maximum", "alice", "/requests/" + active.ID + "/extend", url.Values{"duration": {"9h"}, "reason": {"x"}}, 400, "exceeds the maximum"},
		{"unknown request", "alice", "/requests/nope/cancel", nil, 404, "not found"},
		{"unknown action", "alice", "/requests/" + active.ID + "/explode", nil, 404, "no page"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.state(t)
			r := s.post(t, tc.user, tc.path, tc.form, nil)
			wantPage(t, r, tc.status, tc.message, `role="alert"`)
			s.unchanged(t, before)
		})
	}
	t.Run("refused form keeps what was typed", func(t *testing.T) {
		r := s.post(t, "alice", "/requests", url.Values{"target": {"app/read"}, "duration": {"soon"}, "reason": {"my <reason>"}, "ticket": {"T-1"}}, nil)
		wantPage(t, r, http.StatusBadRequest, `<option value="app/read" selected>`, "my &lt;reason&gt;</textarea>", `value="T-1"`)
	})
	t.Run("oversized form", func(t *testing.T) {
		before := s.state(t)
		r := s.post(t, "alice", "/requests", url.Values{"reason": {strings.Repeat("x", 100<<10)}}, nil)
		wantPage(t, r, http.StatusBadRequest, "could not be read")
		s.unchanged(t, before)
	})
}

func TestPagesRefuseWhatTheyMayNotShow(t *testing.T) {
	s := newStack(t)
	req := s.submit(t, "alice", "db", "admin")
	wantPage(t, s.get(t, "dave", "/requests/"+req.ID), http.StatusForbidden, "may not see")
	wantPage(t, s.get(t, "alice", "/requests/nope"), http.StatusNotFound, "not found")
	wantPage(t, s.get(t, "alice", "/?state=weird"), http.StatusBadRequest, "want open, ended or all")
	wantPage(t, s.get(t, "alice", "/nowhere"), http.StatusNotFound, "no page")
	wantPage(t, s.get(t, "carol", "/requests/"+req.ID), http.StatusOK, "request.created", `id="cancel"`)
	for _, filter := range []string{"open", "ended", "all"} {
		wantPage(t, s.get(t, "alice", "/?state="+filter), http.StatusOK)
	}
	if strings.Contains(s.get(t, "alice", "/?state=ended").body, req.ID) {
		t.Fatal("a pending request listed as ended")
	}
}

func TestStepUpHook(t *testing.T) {
	stepUp := errors.New("step up")
	s := newStack(t, func(c *webui.Config) {
		c.StepUp = func(r *http.Request, err error) string {
			if errors.Is(err, lapse.ErrForbidden) && r.URL.Path != "/requests" {
				return "/auth/login?prompt=login"
			}
			_ = stepUp
			return ""
		}
	})
	req := s.submit(t, "alice", "db", "admin")
	wantRedirect(t, s.get(t, "alice", "/admin/grants"), "/auth/login?prompt=login")
	before := s.state(t)
	r := s.post(t, "alice", "/requests/"+req.ID+"/approve", nil, nil)
	wantPage(t, r, http.StatusUnauthorized, "Nothing was done", `href="/auth/login?prompt=login"`)
	s.unchanged(t, before)
	// Errors the hook does not claim are shown as usual.
	wantPage(t, s.post(t, "bob", "/requests", url.Values{"target": {"app/read"}, "duration": {"1h"}, "reason": {"x"}}, nil), http.StatusForbidden)
}

func TestNewChecksConfig(t *testing.T) {
	s := newStack(t)
	for _, tc := range []struct {
		name string
		cfg  webui.Config
	}{
		{"no broker", webui.Config{Auth: nil}},
		{"no authenticator", webui.Config{Broker: s.broker}},
		{"short key", webui.Config{Broker: s.broker, Auth: authFunc(nil), CSRFKey: []byte("short")}},
		{"bad origin", webui.Config{Broker: s.broker, Auth: authFunc(nil), Origin: "lapse.example.com"}},
	} {
		if _, err := webui.New(tc.cfg); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

type authFunc func(*http.Request) (lapse.Principal, error)

func (f authFunc) Authenticate(r *http.Request) (lapse.Principal, error) { return f(r) }

// A configured origin is the only one forms may come from.
func TestConfiguredOrigin(t *testing.T) {
	s := newStack(t, func(c *webui.Config) { c.Origin = "https://lapse.example.com" })
	req := s.submit(t, "alice", "db", "admin")
	before := s.state(t)
	wantPage(t, s.post(t, "alice", "/requests/"+req.ID+"/cancel", nil, nil), http.StatusForbidden, "another origin")
	s.unchanged(t, before)
	r := s.post(t, "alice", "/requests/"+req.ID+"/cancel", nil, map[string]string{"Origin": "https://LAPSE.example.com"})
	wantRedirect(t, r, "/requests/"+req.ID)
}

// Single sign-on sets the same cookie through SetSession.
func TestSetSession(t *testing.T) {
	s := newStack(t)
	for _, tc := range []struct {
		name     string
		loopback bool
		proto    string
		secure   bool
	}{
		{"loopback", true, "", false},
		{"loopback behind TLS", true, "https", true},
		{"elsewhere", false, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ui, err := webui.New(webui.Config{Broker: s.broker, Auth: authFunc(nil), Loopback: tc.loopback})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodGet, "/auth/callback", nil)
			if tc.proto != "" {
				req.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			w := httptest.NewRecorder()
			ui.SetSession(w, req, "sess-123", time.Now().Add(time.Hour))
			c := cookieOf(response{header: w.Header()}, webui.CookieName)
			if c == nil || c.Value != "sess-123" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure != tc.secure ||
				c.MaxAge < 3500 || c.MaxAge > 3600 {
				t.Fatalf("cookie: %+v", c)
			}
		})
	}
}

// A session the authenticator stops accepting (revoked, expired) sends the
// browser to sign in again, and its cookie is cleared.
func TestRevokedSession(t *testing.T) {
	var revoked atomic.Bool
	s := newStack(t, func(c *webui.Config) {
		inner := c.Auth
		c.Auth = authFunc(func(r *http.Request) (lapse.Principal, error) {
			if revoked.Load() {
				return lapse.Principal{}, fmt.Errorf("session revoked: %w", lapse.ErrUnauthenticated)
			}
			return inner.Authenticate(r)
		})
	})
	req := s.submit(t, "alice", "db", "admin")
	csrf := s.csrf(t, "alice")
	revoked.Store(true)
	r := s.get(t, "alice", "/requests/"+req.ID)
	wantRedirect(t, r, "/signin?next=%2Frequests%2F"+req.ID)
	if c := cookieOf(r, webui.CookieName); c == nil || c.MaxAge >= 0 {
		t.Fatalf("cookie of a revoked session not cleared: %+v", c)
	}
	before := s.state(t)
	r = s.post(t, "alice", "/requests/"+req.ID+"/cancel", url.Values{"csrf": {csrf}}, nil)
	wantRedirect(t, r, "/signin")
	s.unchanged(t, before)
}

// An authenticator that fails, rather than refusing the token, signs
// nobody out: the page says so and the cookie stays.
func TestAuthenticatorDown(t *testing.T) {
	var down atomic.Bool
	s := newStack(t, func(c *webui.Config) {
		inner := c.Auth
		c.Auth = authFunc(func(r *http.Request) (lapse.Principal, error) {
			if down.Load() {
				return lapse.Principal{}, errors.New("session store unreachable")
			}
			return inner.Authenticate(r)
		})
	})
	csrf, cookie := s.signinForm(t)
	down.Store(true)
	r := s.get(t, "alice", "/")
	wantPage(t, r, http.StatusInternalServerError, "Internal error")
	if strings.Contains(r.body, "unreachable") {
		t.Fatal("the page shows the internal error")
	}
	if c := cookieOf(r, webui.CookieName); c != nil {
		t.Fatalf("a failing authenticator cleared the session: %+v", c)
	}
	r = s.signin(t, url.Values{"csrf": {csrf}, "token": {"tok-alice"}}, cookie, nil)
	wantPage(t, r, http.StatusInternalServerError, "could not be checked")
	if c := cookieOf(r, webui.CookieName); c != nil {
		t.Fatalf("sign-in with a failing authenticator set a session: %+v", c)
	}
}
