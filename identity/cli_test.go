package identity_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/identity"
)

// loopback is a stand-in for `lapse login`'s redirect listener: it
// records what the browser brings.
type loopback struct {
	srv *httptest.Server
	mu  sync.Mutex
	got url.Values
}

func newLoopback(t *testing.T) *loopback {
	l := &loopback{}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.got = r.URL.Query()
		l.mu.Unlock()
		_, _ = w.Write([]byte("signed in; you may close this window"))
	}))
	t.Cleanup(l.srv.Close)
	return l
}

func (l *loopback) query() url.Values {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.got
}

// cliSignIn runs the browser part of a CLI sign-in and returns the code
// the loopback listener received.
func (s *stack) cliSignIn(t *testing.T, verifier, maxAge string) string {
	t.Helper()
	lb := newLoopback(t)
	q := url.Values{"cli_redirect": {lb.srv.URL + "/callback"}, "cli_challenge": {identity.S256(verifier)}, "cli_state": {"state-0123456789abcdef"}}
	if maxAge != "" {
		q.Set("max_age", maxAge)
	}
	jar := browser(t).Jar
	c := &http.Client{Jar: jar}
	form := s.openLogin(t, c, "/auth/login?"+q.Encode())
	resp := s.submitLogin(t, c, form, "u-alice")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CLI sign-in ended with %d: %s", resp.StatusCode, readBody(t, resp))
	}
	got := lb.query()
	if got.Get("state") != "state-0123456789abcdef" || !strings.HasPrefix(got.Get("code"), "lapse_c_") {
		t.Fatalf("loopback got %v, want the CLI's state and a one-time code", got)
	}
	return got.Get("code")
}

func TestCLISignIn(t *testing.T) {
	s := newStack(t)
	anon := s.client("")
	verifier := strings.Repeat("v", 43)

	// A code is bound to the verifier: a wrong one burns it.
	code := s.cliSignIn(t, verifier, "")
	if _, err := anon.ExchangeCode(t.Context(), code, strings.Repeat("w", 43)); !errors.Is(err, lapse.ErrUnauthenticated) || !strings.Contains(err.Error(), "verifier does not match") {
		t.Fatalf("exchange with a wrong verifier: %v", err)
	}
	if _, err := anon.ExchangeCode(t.Context(), code, verifier); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("exchange after a failed attempt: %v, want the code used up", err)
	}

	code = s.cliSignIn(t, verifier, "")
	tok, err := anon.ExchangeCode(t.Context(), code, verifier)
	if err != nil {
		t.Fatal(err)
	}
	if tok.User != "alice@example.com" || tok.RefreshToken == "" || !tok.RefreshExpiresAt.After(tok.ExpiresAt) {
		t.Fatalf("tokens = %+v", tok)
	}
	if _, err := anon.ExchangeCode(t.Context(), code, verifier); err == nil {
		t.Fatal("a code was exchanged twice")
	}
	if w, err := s.client(tok.Token).Whoami(t.Context()); err != nil || w.Name != "alice@example.com" {
		t.Fatalf("whoami with the CLI session: %+v, %v", w, err)
	}

	// Refresh rotates both tokens; the old ones stop working.
	next, err := anon.Refresh(t.Context(), tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if next.Token == tok.Token || next.RefreshToken == tok.RefreshToken {
		t.Fatal("refresh did not rotate the tokens")
	}
	if _, err := s.client(tok.Token).Whoami(t.Context()); !errors.Is(err, lapse.ErrUnauthenticated) {
		t.Errorf("old session token after refresh: %v, want 401", err)
	}
	if _, err := s.client(next.Token).Whoami(t.Context()); err != nil {
		t.Errorf("new session token: %v", err)
	}
	// Presenting the rotated-away refresh token again means it was copied:
	// the whole session is revoked.
	if _, err := anon.Refresh(t.Context(), tok.RefreshToken); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("reused refresh token: %v", err)
	}
	if _, err := s.client(next.Token).Whoami(t.Context()); !errors.Is(err, lapse.ErrUnauthenticated) {
		t.Errorf("session after refresh-token reuse: %v, want revoked", err)
	}
	if evs := s.audit(t, lapse.EvSessionRevoked); len(evs) != 1 || !strings.Contains(string(evs[0].Data), "used twice") {
		t.Errorf("session.revoked audit = %+v", evs)
	}
}

func TestCLISignInBadInput(t *testing.T) {
	s := newStack(t)
	c := browser(t)
	for _, tc := range []struct{ query, want string }{
		{"cli_redirect=" + url.QueryEscape("http://evil.example:8080/cb") + "&cli_challenge=" + strings.Repeat("a", 43) + "&cli_state=" + strings.Repeat("s", 16), "loopback"},
		{"cli_redirect=" + url.QueryEscape("https://127.0.0.1:8080/cb") + "&cli_challenge=" + strings.Repeat("a", 43) + "&cli_state=" + strings.Repeat("s", 16), "http:// loopback"},
		{"cli_redirect=" + url.QueryEscape("http://127.0.0.1:8080/cb") + "&cli_challenge=short&cli_state=" + strings.Repeat("s", 16), "S256 challenge"},
		{"cli_redirect=" + url.QueryEscape("http://127.0.0.1:8080/cb") + "&cli_challenge=" + strings.Repeat("a", 43) + "&cli_state=x", "cli_state"},
		{"max_age=-1", "max_age"},
	} {
		resp, err := c.Get(s.url + "/auth/login?" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		body := readBody(t, resp)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %q, want 400 with %q", tc.query, resp.StatusCode, body, tc.want)
		}
	}
	for _, in := range []api.TokenRequest{{GrantType: "password"}, {GrantType: "authorization_code"}} {
		if err := s.client("").Do(t.Context(), "POST", "/auth/token", in, nil); !errors.Is(err, lapse.ErrInvalid) {
			t.Errorf("token request %+v: %v, want 400", in, err)
		}
	}
	if _, err := s.client("").Refresh(t.Context(), "lapse_r_unknown"); !errors.Is(err, lapse.ErrUnauthenticated) {
		t.Errorf("unknown refresh token: %v, want 401", err)
	}
}
