package main

import (
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The server serves the web UI at / beside the API: a token signs in, and
// the session cookie is no credential for the API.
func TestWebUIServed(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	dir := t.TempDir()
	s := startServer(t, "--config", writeConfig(t, dir), "--data", filepath.Join(dir, "data"))
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(req *http.Request) (*http.Response, string) {
		t.Helper()
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	get := func(path string, cookies ...*http.Cookie) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, s.url+path, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		return do(req)
	}

	if resp, _ := get("/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Fatalf("GET / signed out: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := get("/signin")
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("GET /signin: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if csrf == nil || len(resp.Cookies()) != 1 {
		t.Fatalf("sign-in page: cookies %v\n%s", resp.Cookies(), body)
	}
	form := url.Values{"csrf": {csrf[1]}, "token": {"tok-alice"}}
	req, _ := http.NewRequest(http.MethodPost, s.url+"/signin", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.url)
	req.AddCookie(resp.Cookies()[0])
	resp, _ = do(req)
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "lapse_session" {
			session = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == nil || !session.HttpOnly || session.Secure {
		t.Fatalf("sign-in: %d, session cookie %+v (on loopback: HttpOnly, not Secure)", resp.StatusCode, session)
	}
	if resp, body := get("/", session); resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="whoami">alice<`) {
		t.Fatalf("GET / signed in: %d\n%s", resp.StatusCode, body)
	}
	// The API still answers under /v1, with bearer tokens only.
	if resp, body := get("/v1/whoami", session); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API with the session cookie alone: %d %s", resp.StatusCode, body)
	}
	req, _ = http.NewRequest(http.MethodGet, s.url+"/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer tok-alice")
	if resp, body := do(req); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"name":"alice"`) {
		t.Fatalf("API whoami: %d %s", resp.StatusCode, body)
	}
	if resp, body := get("/healthz"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "ok") {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
	if resp, body := get("/v1/nope"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown API path: %d %s", resp.StatusCode, body)
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:80": true, "127.1.2.3:0": true,
		":8080": false, "0.0.0.0:8080": false, "10.0.0.1:8080": false, "lapse.example.com:443": false, "nonsense": false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
