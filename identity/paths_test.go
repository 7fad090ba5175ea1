package identity_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/lapse-access/lapse/identity"
)

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"":                         "/",
		"/":                        "/",
		"/requests?state=pending":  "/requests?state=pending",
		"/requests/abc#approve":    "/requests/abc#approve",
		"https://evil.example/":    "/",
		"//evil.example/":          "/",
		"/\\evil.example":          "/",
		"\\\\evil.example":         "/",
		"javascript:alert(1)":      "/",
		"requests":                 "/",
		"/ok\r\nSet-Cookie: x=1":   "/",
		"/%2F%2Fevil.example":      "/%2F%2Fevil.example",
		"http:/evil.example":       "/",
		"/\tevil":                  "/",
		"/requests?next=//evil.ex": "/requests?next=//evil.ex",
	} {
		if got := identity.LocalPath(in); got != want {
			t.Errorf("LocalPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLoginURL(t *testing.T) {
	for _, tc := range []struct {
		ret    string
		maxAge time.Duration
		want   string
	}{
		{"", 0, "/auth/login"},
		{"/requests/x", 0, "/auth/login?return=%2Frequests%2Fx"},
		{"/", 5 * time.Minute, "/auth/login?max_age=300&return=%2F"},
	} {
		if got := identity.LoginURL(tc.ret, tc.maxAge); got != tc.want {
			t.Errorf("LoginURL(%q, %s) = %q, want %q", tc.ret, tc.maxAge, got, tc.want)
		}
	}
}

func TestSessionCookieSecure(t *testing.T) {
	s := &identity.Service{SecureCookies: true}
	c := s.SessionCookie("lapse_s_x", time.Now().Add(time.Hour))
	if c.Name != identity.SessionCookie || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.MaxAge <= 3500 {
		t.Errorf("cookie = %+v", c)
	}
}
