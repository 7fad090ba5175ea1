package browsertest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/lapse-access/lapse/lapsetest/browsertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "script-src 'self'")
		switch r.URL.Path {
		case "/set":
			http.SetCookie(w, &http.Cookie{Name: "who", Value: r.URL.Query().Get("v"), Path: "/"})
		case "/inline":
			fmt.Fprint(w, `<p id="p">inline</p><script>document.getElementById("p").textContent = "ran";</script>`)
			return
		}
		c, _ := r.Cookie("who")
		who := "nobody"
		if c != nil {
			who = c.Value
		}
		fmt.Fprintf(w, `<title>t</title><p id="who">%s</p>`, who)
	}))
	defer srv.Close()
	start := time.Now()
	b := browsertest.Start(t)
	t.Logf("browser started in %s", time.Since(start))
	one, two := b.Tab(t), b.Tab(t)

	var text string
	run := func(tab *browsertest.Tab, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := tab.Run(20*time.Second, steps...); err != nil {
			t.Fatal(err)
		}
	}
	read := func(tab *browsertest.Tab, sel string) string {
		t.Helper()
		v, err := chromedp.Run(tab.Ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	start = time.Now()
	run(one, chromedp.Navigate(srv.URL+"/set?v=one"), chromedp.Navigate(srv.URL+"/"))
	t.Logf("first page after %s", time.Since(start))
	if text = read(one, "#who"); text != "one" {
		t.Fatalf("first tab sees %q", text)
	}
	// Tabs do not share cookies.
	run(two, chromedp.Navigate(srv.URL+"/"))
	if text = read(two, "#who"); text != "nobody" {
		t.Fatalf("second tab sees the first tab's cookie: %q", text)
	}
	// A script the policy refuses does not run and is reported.
	run(one, chromedp.Navigate(srv.URL+"/inline"))
	if text = read(one, "#p"); text != "inline" {
		t.Fatalf("the inline script ran: %q", text)
	}
	deadline := time.Now().Add(5 * time.Second)
	var problems []string
	for time.Now().Before(deadline) && len(problems) == 0 {
		problems = one.Problems()
		time.Sleep(50 * time.Millisecond)
	}
	if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, "Content Security Policy") }) {
		t.Fatalf("CSP refusal not reported: %v", problems)
	}
	// Names other than localhost do not resolve: nothing leaves the machine.
	err := two.Run(20*time.Second, chromedp.Navigate("http://example.com/"))
	if err == nil || !strings.Contains(err.Error(), "ERR_NAME_NOT_RESOLVED") {
		t.Fatalf("navigating to example.com: %v, want a resolution error", err)
	}
	two.Problems()
}
