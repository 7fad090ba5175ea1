package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lapse-access/lapse/lapsetest/browsertest"
)

// In a real browser: "Sign in with SSO" leads to the provider's login
// form; signing in there lands on the UI, signed in as the provider's
// user; signing out returns to the sign-in page.
func TestBrowserSSOSignIn(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser, the server and a provider")
	}
	s, op := ssoApp(t)
	tab := browsertest.Start(t).Tab(t)
	const step = 20 * time.Second
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := tab.Run(step, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	read := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(tab.Ctx, step)
		defer cancel()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return strings.TrimSpace(v)
	}

	run("open the UI", chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.ID("sso")))
	if loc := read("location", chromedp.Location()); loc != s.url+"/signin" {
		t.Fatalf("signed out, / led to %s", loc)
	}
	run("click Sign in with SSO", chromedp.Click(chromedp.ID("sso")), chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)))
	if loc := read("location", chromedp.Location()); !strings.HasPrefix(loc, op.Issuer+"/login") {
		t.Fatalf("Sign in with SSO led to %s", loc)
	}
	run("sign in at the provider", chromedp.SetValue(chromedp.CSS(`input[name="username"]`), "u-alice"),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)), chromedp.WaitVisible(chromedp.ID("whoami")))
	if loc, who := read("location", chromedp.Location()), read("whoami", chromedp.Text(chromedp.ID("whoami"))); loc != s.url+"/" || who != "alice@example.com" {
		t.Fatalf("after sign-in: %s as %q", loc, who)
	}
	run("sign out", chromedp.Click(chromedp.ID("signout")), chromedp.WaitVisible(chromedp.ID("sso")))
	if loc := read("location", chromedp.Location()); loc != s.url+"/signin" {
		t.Fatalf("after sign-out: %s", loc)
	}
}
