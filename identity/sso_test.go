package identity_test

import (
	"context"
	"errors"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/client"
	"github.com/lapse-access/lapse/lapsetest/oidctest"
)

func TestWebSignIn(t *testing.T) {
	s := newStack(t)
	resp := s.signIn(t, browser(t), "/auth/login?return=%2Frequests%3Fstate%3Dpending", "u-alice")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/requests?state=pending" {
		t.Fatalf("callback answered %d to %q, want 303 to the return path", resp.StatusCode, resp.Header.Get("Location"))
	}
	c := sessionCookie(t, resp)
	if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Lax, Path=/, not Secure on loopback", c)
	}
	w, err := s.client(c.Value).Whoami(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if w.Name != "alice@example.com" || len(w.Groups) != 1 || w.Groups[0] != "eng" || !w.MFA || w.Session == "" {
		t.Errorf("whoami = %+v, want alice@example.com in eng with MFA and a session", w)
	}
	if evs := s.audit(t, lapse.EvLogin); len(evs) != 1 || evs[0].User != "alice@example.com" || strings.Contains(string(evs[0].Data), c.Value) {
		t.Errorf("login audit = %+v, want one record without the token", evs)
	}

	// The API refuses the cookie: only bearer tokens.
	req, _ := http.NewRequest("GET", s.url+"/v1/whoami", nil)
	req.AddCookie(c)
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusUnauthorized {
		t.Errorf("API with only the cookie: %d, want 401", r2.StatusCode)
	}

	// Logout revokes the session server-side.
	if err := s.client(c.Value).Do(t.Context(), "POST", "/v1/logout", nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client(c.Value).Whoami(t.Context()); !errors.Is(err, lapse.ErrUnauthenticated) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("whoami after logout: %v, want revoked", err)
	}
	if evs := s.audit(t, lapse.EvLogout); len(evs) != 1 {
		t.Errorf("logout audit records: %d, want 1", len(evs))
	}
}

func TestReturnPathStaysLocal(t *testing.T) {
	s := newStack(t)
	for _, ret := range []string{"https://evil.example/x", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "evil"} {
		resp := s.signIn(t, browser(t), "/auth/login?return="+url.QueryEscape(ret), "u-alice")
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/" {
			t.Errorf("return=%q: callback answered %d to %q, want 303 to /", ret, resp.StatusCode, loc)
		}
	}
}

func TestSignInRefusals(t *testing.T) {
	s := newStack(t)
	s.op.AddUser(oidctest.User{ID: "u-nogroups", Email: "ng@example.com", NoGroups: true})
	tests := []struct {
		name   string
		tamper oidctest.Tamper
		user   string
		want   string
	}{
		{"wrong nonce", oidctest.Tamper{Nonce: "someone-elses-nonce"}, "u-alice", "nonce does not match"},
		{"expired ID token", oidctest.Tamper{Lifetime: -time.Hour}, "u-alice", "ID token refused: it expired at"},
		{"wrong audience", oidctest.Tamper{Claims: func(c map[string]any) { c["aud"] = []string{"another-app"}; delete(c, "azp") }},
			"u-alice", "issued for another client (audience)"},
		{"unknown issuer", oidctest.Tamper{Claims: func(c map[string]any) { c["iss"] = "https://evil.example" }},
			"u-alice", "issued by an unknown issuer"},
		{"signed with another key", oidctest.Tamper{OtherKey: true}, "u-alice", "signature does not verify with the provider's published keys"},
		{"missing groups claim", oidctest.Tamper{}, "u-nogroups", `no "groups" claim`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.op.SetTamper(tc.tamper)
			defer s.op.SetTamper(oidctest.Tamper{})
			refusedBefore := len(s.audit(t, lapse.EvLoginRefused))
			resp := s.signIn(t, browser(t), "/auth/login", tc.user)
			body := html.UnescapeString(readBody(t, resp))
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, tc.want) {
				t.Fatalf("callback answered %d %q, want 401 with %q", resp.StatusCode, body, tc.want)
			}
			for _, c := range resp.Cookies() {
				if c.Name == "lapse_session" {
					t.Errorf("refused sign-in set a session cookie")
				}
			}
			if n := len(s.audit(t, lapse.EvLoginRefused)); n != refusedBefore+1 {
				t.Errorf("refusal audit records: %d, want %d", n, refusedBefore+1)
			}
		})
	}
	if evs := s.audit(t, lapse.EvLogin); len(evs) != 0 {
		t.Errorf("refused sign-ins created %d sessions", len(evs))
	}
}

func TestSignInStateChecks(t *testing.T) {
	s := newStack(t)
	t.Run("wrong state", func(t *testing.T) {
		c := browser(t)
		s.openLogin(t, c, "/auth/login")
		resp, err := c.Get(s.url + "/auth/callback?state=forged&code=whatever")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if body := readBody(t, resp); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "unknown or already used sign-in state") {
			t.Fatalf("forged state: %d %q", resp.StatusCode, body)
		}
	})
	t.Run("callback replayed", func(t *testing.T) {
		c := browser(t)
		resp := s.signIn(t, c, "/auth/login", "u-alice")
		sessionCookie(t, resp)
		cb := resp.Request.URL.String()
		again, err := c.Get(cb)
		if err != nil {
			t.Fatal(err)
		}
		defer again.Body.Close()
		if body := readBody(t, again); again.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "already used") {
			t.Fatalf("replayed callback: %d %q", again.StatusCode, body)
		}
	})
	t.Run("finished in another browser", func(t *testing.T) {
		form := s.openLogin(t, browser(t), "/auth/login")
		resp := s.submitLogin(t, browser(t), form, "u-alice")
		if body := readBody(t, resp); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "started in another browser") {
			t.Fatalf("login finished in another browser: %d %q", resp.StatusCode, body)
		}
	})
	t.Run("provider refused", func(t *testing.T) {
		c := browser(t)
		form := s.openLogin(t, c, "/auth/login")
		_ = form
		resp, err := c.Get(s.url + "/auth/callback?error=access_denied&error_description=nope&state=x")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if body := readBody(t, resp); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "access_denied") {
			t.Fatalf("provider error: %d %q", resp.StatusCode, body)
		}
	})
}

func TestUnknownIssuer(t *testing.T) {
	// The provider calls itself 127.0.0.1; Lapse is told localhost. The
	// issuer must match byte for byte, so sign-in is refused.
	s := newStack(t, stackOptions{issuer: "http://localhost:1"})
	probe := newStack(t)
	s2 := newStack(t, stackOptions{issuer: strings.Replace(probe.op.Issuer, "127.0.0.1", "localhost", 1)})
	for _, st := range []*stack{s, s2} {
		resp, err := browser(t).Get(st.url + "/auth/login")
		if err != nil {
			t.Fatal(err)
		}
		body := readBody(t, resp)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "sign-in is unavailable: identity provider http://localhost") {
			t.Errorf("unknown issuer: %d %q", resp.StatusCode, body)
		}
	}
	if !strings.Contains(probe.op.Issuer, "127.0.0.1") {
		t.Fatalf("test provider issuer %s is not on 127.0.0.1", probe.op.Issuer)
	}
}

func TestSessionExpires(t *testing.T) {
	s := newStack(t)
	resp := s.signIn(t, browser(t), "/auth/login", "u-bob")
	tok := sessionCookie(t, resp).Value
	ss, err := s.store.SessionByToken(context.Background(), lapse.HashToken(tok))
	if err != nil {
		t.Fatal(err)
	}
	if got := ss.ExpiresAt.Sub(ss.CreatedAt); got != time.Hour {
		t.Errorf("web session lasts %s, want the configured 1h", got)
	}
	if ss.MFA.Present != lapse.FlagFalse {
		t.Errorf("bob signed in with a password only, MFA = %v", ss.MFA.Present)
	}
	var ce *client.Error
	_, err = s.client(tok + "x").Whoami(t.Context())
	if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized {
		t.Errorf("a wrong session token: %v, want 401", err)
	}
}

func TestLocalSession(t *testing.T) {
	s := newStack(t)
	res, err := s.ids.LocalSession(t.Context(), "tok-carol")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Token, "lapse_s_") || res.User != "carol" {
		t.Fatalf("local session = %+v", res)
	}
	w, err := s.client(res.Token).Whoami(t.Context())
	if err != nil || w.Name != "carol" || !w.Admin || w.Session == "" {
		t.Fatalf("whoami = %+v, %v", w, err)
	}
	if err := s.ids.LogoutToken(t.Context(), res.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := s.client(res.Token).Whoami(t.Context()); !errors.Is(err, lapse.ErrUnauthenticated) {
		t.Errorf("after logout: %v", err)
	}
	if _, err := s.client("tok-carol").Whoami(t.Context()); err != nil {
		t.Errorf("the static token itself still works: %v", err)
	}
	for _, bad := range []string{"", "nope", res.Token} {
		if _, err := s.ids.LocalSession(t.Context(), bad); !errors.Is(err, lapse.ErrUnauthenticated) {
			t.Errorf("LocalSession(%q): %v, want refused", bad, err)
		}
	}
}
