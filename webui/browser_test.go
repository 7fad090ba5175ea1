package webui_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest/browsertest"
)

// step bounds one browser step.
const step = 20 * time.Second

// browserUser drives one user's private window.
type browserUser struct {
	t   *testing.T
	tab *browsertest.Tab
	url string
}

func (u *browserUser) run(steps ...chromedp.Action[chromedp.Void]) {
	u.t.Helper()
	if err := u.tab.Run(step, steps...); err != nil {
		u.t.Fatal(err)
	}
}

// value runs an action that returns a value, within one step.
func value[T any](u *browserUser, what string, a chromedp.Action[T]) T {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(u.tab.Ctx, step)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		u.t.Fatalf("%s: %v", what, err)
	}
	return v
}

func (u *browserUser) text(sel string) string {
	u.t.Helper()
	return strings.TrimSpace(value(u, "text of "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// submit clicks sel and waits for the page the form leads to; it returns
// that page's status.
func (u *browserUser) submit(sel string) int64 {
	u.t.Helper()
	return value(u, "submit "+sel, chromedp.Action[*network.Response](func(ctx context.Context, _ *chromedp.Target) (*network.Response, error) {
		return chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	})).Status
}

func (u *browserUser) location() string {
	u.t.Helper()
	return strings.TrimPrefix(value(u, "location", chromedp.Location()), u.url)
}

// signin signs in on the sign-in page with a pasted token.
func (u *browserUser) signin(token string) {
	u.t.Helper()
	u.run(chromedp.Navigate(u.url+"/"), chromedp.WaitVisible(chromedp.ID("token")))
	if loc := u.location(); loc != "/signin" {
		u.t.Fatalf("signed out, / led to %s", loc)
	}
	u.run(chromedp.SetValue(chromedp.ID("token"), token))
	if status := u.submit("#signin"); status != http.StatusOK {
		u.t.Fatalf("sign-in: %d", status)
	}
}

// A requester signs in with a token and asks for access; an approver, in
// another window, approves it; the requester sees the credentials once,
// watches the countdown, and releases the access.
func TestBrowserRequestApproveRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	s := newStack(t)
	b := browsertest.Start(t)
	alice := &browserUser{t, b.Tab(t), s.url}
	bob := &browserUser{t, b.Tab(t), s.url}

	alice.signin("tok-alice")
	if who := alice.text("#whoami"); who != "alice" {
		t.Fatalf("signed in as %q", who)
	}
	alice.run(chromedp.Navigate(s.url+"/requests/new"), chromedp.WaitVisible(chromedp.ID("target")),
		chromedp.SetValue(chromedp.ID("target"), "db/admin"),
		chromedp.SetValue(chromedp.ID("duration"), "45m"),
		chromedp.SetValue(chromedp.ID("reason"), "INC-4411: orders stuck"),
		chromedp.SetValue(chromedp.ID("ticket"), "INC-4411"))
	if status := alice.submit("#submit-request"); status != http.StatusOK {
		t.Fatalf("submit: %d", status)
	}
	if state := alice.text("#state"); state != "pending" {
		t.Fatalf("new request is %q", state)
	}
	id := strings.TrimPrefix(strings.Split(alice.location(), "?")[0], "/requests/")

	bob.signin("tok-bob")
	bob.run(chromedp.Navigate(s.url+"/approvals"),
		chromedp.SetValue(chromedp.CSS(`section[data-id="`+id+`"] form.approve input[name="comment"]`), "ok for INC-4411"))
	if status := bob.submit(`section[data-id="` + id + `"] button[data-action="approve"]`); status != http.StatusOK {
		t.Fatalf("approve: %d", status)
	}
	if flash := bob.text("#flash"); flash != "Approval recorded." {
		t.Fatalf("after approving: %q", flash)
	}

	alice.run(chromedp.Navigate(s.url+"/requests/"+id), chromedp.WaitVisible(chromedp.ID("show-credentials")))
	if state := alice.text("#state"); state != "active" {
		t.Fatalf("approved request is %q", state)
	}
	// The countdown runs in the page's script.
	first := alice.text("time.countdown")
	value(alice, "the countdown stays at "+first, chromedp.Poll[bool](`document.querySelector("time.countdown").textContent !== `+jsString(first),
		chromedp.WithPollingTimeout(5*time.Second)))
	if status := alice.submit("#show-credentials"); status != http.StatusOK {
		t.Fatalf("credentials: %d", status)
	}
	token := alice.text("#credential-value")
	if _, err := s.tok.Verify(token); err != nil {
		t.Fatalf("the page shows no valid token (%q): %v", token, err)
	}
	// The page took the request's address: a reload reads the request
	// again, without the credentials, and takes nothing.
	if loc := alice.location(); loc != "/requests/"+id {
		t.Fatalf("credentials page at %s", loc)
	}
	alice.run(chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("release")))
	if html := alice.text("main"); strings.Contains(html, token) || strings.Contains(html, "Show credentials") {
		t.Fatal("the credentials are offered again after a reload")
	}
	if status := alice.submit("#release"); status != http.StatusOK {
		t.Fatalf("release: %d", status)
	}
	if flash, state := alice.text("#flash"), alice.text("#state"); flash != "Access released." || state != "ended" {
		t.Fatalf("after release: %q, state %q", flash, state)
	}
	if r := s.request(t, id); r.State != lapse.StateEnded || r.EndReason != lapse.EndReleased {
		t.Fatalf("stored: %s %s", r.State, r.EndReason)
	}

	// Signing out ends the window's session.
	if status := alice.submit("#signout"); status != http.StatusOK {
		t.Fatalf("sign-out: %d", status)
	}
	if loc := alice.location(); loc != "/signin" {
		t.Fatalf("after sign-out: %s", loc)
	}
	alice.run(chromedp.Navigate(s.url + "/approvals"))
	if loc := alice.location(); !strings.HasPrefix(loc, "/signin") {
		t.Fatalf("signed out, /approvals shows %s", loc)
	}
}

func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
