// Package browsertest starts a real headless Chromium for tests and opens
// isolated tabs in it, driven with github.com/chromedp/chromedp.
//
// The browser runs with a fresh temporary profile and without the
// background traffic Chromium otherwise starts (updates, sync, QUIC
// probes), and resolves no host names but localhost: tests talk to
// servers on loopback only. When Chromium is missing, [Start] skips the
// test with the command that installs it, or fails it when the CI
// environment variable is set.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// InstallHint says how to install Chromium.
const InstallHint = "chromium not found; install it with: apt-get install chromium"

// startTimeout bounds how long Chromium may take to start.
const startTimeout = 60 * time.Second

// errNoBrowser reports that no Chromium is installed.
var errNoBrowser = errors.New(InstallHint)

// names are the programs tried, in order.
var names = []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome", "headless_shell"}

// find returns the path of a Chromium program.
func find() (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", errNoBrowser
}

// Browser is one running Chromium.
type Browser struct {
	ctx context.Context
}

// Start starts Chromium for t and stops it, removing its profile, when t
// ends. It skips t (or fails it when CI is set) if Chromium is missing.
func Start(t testing.TB) *Browser {
	t.Helper()
	path, err := find()
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skip(InstallHint)
		}
		t.Fatalf("start browser: %v", err)
	}
	// A fresh profile, removed once the browser has exited.
	profile, err := os.MkdirTemp("", "browsertest-")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.Headless,
		chromedp.NoSandbox, // tests may run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,AutofillServerCommunication,CertificateTransparencyComponentUpdater"),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		// Nothing but loopback: a host other than localhost, 127.0.0.1 and
		// ::1 does not resolve, so no request leaves the machine.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]"),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
		t.Logf("chromedp: "+format, args...)
	}))
	alloc := chromedp.FromContext(bctx).Allocator
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		alloc.Wait() // the process has exited: nothing writes the profile
		if err := os.RemoveAll(profile); err != nil {
			t.Errorf("remove browser profile: %v", err)
		}
	})
	// The first run starts the browser; a timeout on it would stop the
	// browser, so it is bounded from the side.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(bctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v", path, err)
		}
	case <-time.After(startTimeout):
		cancelBrowser()
		<-started
		t.Fatalf("start %s: no answer within %s", path, startTimeout)
	}
	return &Browser{ctx: bctx}
}

// Tab is a browser tab with its own cookies and storage.
type Tab struct {
	// Ctx runs chromedp actions in the tab.
	Ctx context.Context

	mu       sync.Mutex
	problems []string
}

// Tab opens a tab in a fresh browser context (a private window: no
// cookies or storage shared with other tabs) and closes it when t ends.
// Uncaught exceptions, console errors and refusals by the
// Content-Security-Policy in the tab fail t.
func (b *Browser) Tab(t testing.TB) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	tab := &Tab{Ctx: ctx}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError || strings.Contains(m.Text, "Content Security Policy") {
				tab.mu.Lock()
				tab.problems = append(tab.problems, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				tab.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		for _, p := range tab.Problems() {
			t.Errorf("browser console: %s", p)
		}
	})
	return tab
}

// Problems returns the exceptions, console errors and policy refusals
// seen in the tab since the last call, and forgets them: a test that
// expects one takes it, and the rest fail the test at its end.
func (t *Tab) Problems() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.problems
	t.problems = nil
	return p
}

// Run runs actions in the tab, each step bounded by timeout.
func (t *Tab) Run(timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(t.Ctx, timeout)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}
