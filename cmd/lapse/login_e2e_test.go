package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lapse-access/lapse/lapsetest/oidctest"
)

// ssoServer starts `lapse serve` with single sign-on through a test
// provider, and a step-up policy on the prod database.
func ssoServer(t *testing.T) (*server, *oidctest.Provider) {
	t.Helper()
	op := ssoProvider(t)
	dir := t.TempDir()
	s := startServer(t, "--config", writeSSOConfig(t, dir, op.Issuer), "--data", filepath.Join(dir, "data"))
	// The redirect URI is known once the listener is up.
	op.AddClient("lapse", ssoSecret, s.url+"/auth/callback")
	return s, op
}

// ssoProvider starts the test identity provider with alice, whose second
// factor is fresh.
func ssoProvider(t *testing.T) *oidctest.Provider {
	t.Helper()
	op := oidctest.Start(t)
	op.AddUser(oidctest.User{ID: "u-alice", Email: "alice@example.com", Groups: []string{"engineering"}, AMR: []string{"pwd", "otp"}})
	return op
}

// ssoSecret is the client secret of Lapse at the test provider.
const ssoSecret = "s3cret"

// stepUpPolicy wants a second factor from the last 5 minutes for prod.
const stepUpPolicy = `@id("prod-fresh-mfa")
@reason("production needs a second factor from the last 5 minutes")
@step_up("5m")
forbid (principal, action in [Action::"Request", Action::"Extend"], resource is Role)
when { resource.environment == "prod" }
unless { context.mfa has present && context.mfa.present && context.mfa has age_seconds && context.mfa.age_seconds <= 300 };
`

// writeSSOConfig writes the config of [writeConfig] with single sign-on
// at issuer and the step-up policy, and returns its path.
func writeSSOConfig(t *testing.T, dir, issuer string) string {
	t.Helper()
	path := writeConfig(t, dir)
	pol := filepath.Join(dir, "policies")
	if err := os.MkdirAll(pol, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pol, "stepup.cedar"), []byte(stepUpPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "oidc-secret")
	if err := os.WriteFile(secret, []byte(ssoSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	appendConfig(t, path, "policies: "+pol+"\noidc:\n  issuer: "+issuer+
		"\n  client_id: lapse\n  client_secret_file: "+secret+"\n  session_ttl: 1h\n")
	return path
}

// appendConfig appends text to the config file at path.
func appendConfig(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

var loginURLRE = regexp.MustCompile(`(http://\S+/auth/login\?\S+)`)

// runLogin runs `lapse login --no-browser` and signs in as user by
// following the printed URL with an HTTP client that fills the provider's
// login form.
func runLogin(t *testing.T, op *oidctest.Provider, env []string, user string) string {
	t.Helper()
	return runSigningIn(t, op, env, user, "login", "--no-browser", "--timeout", "1m")
}

// runSigningIn runs lapse with args, waits for it to print a sign-in URL,
// signs in there as user, and returns what the command printed on stdout.
func runSigningIn(t *testing.T, op *oidctest.Provider, env []string, user string, args ...string) string {
	t.Helper()
	cmd := exec.Command(lapseBinary(t), args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	var printed bytes.Buffer
	sc := bufio.NewScanner(stderr)
	var loginURL string
	for sc.Scan() {
		printed.WriteString(sc.Text() + "\n")
		if m := loginURLRE.FindStringSubmatch(sc.Text()); m != nil {
			loginURL = m[1]
			break
		}
	}
	if loginURL == "" {
		t.Fatalf("lapse %v printed no sign-in URL:\n%s", args, printed.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	followLogin(t, op, loginURL, user)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("lapse %v: %v\n%s%s", args, err, printed.String(), out.String())
	}
	return out.String()
}

// followLogin is the user's browser: it opens url, fills the provider's
// form as user and follows the redirects back to the CLI.
func followLogin(t *testing.T, op *oidctest.Provider, start, user string) {
	t.Helper()
	p := newWebBrowser(t, "").signInAtProvider(op, start, user)
	if p.status != http.StatusOK || !strings.Contains(p.body, "Signed in to Lapse") {
		t.Fatalf("sign-in ended at %s with %d: %s", p.url, p.status, p.body)
	}
}

func cliEnv(s *server, configHome string, extra ...string) []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "LAPSE_TOKEN=") && !strings.HasPrefix(e, "XDG_CONFIG_HOME=") {
			env = append(env, e)
		}
	}
	return append(append(env, "LAPSE_SERVER="+s.url, "XDG_CONFIG_HOME="+configHome), extra...)
}

func runEnv(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(lapseBinary(t), args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func TestLoginEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server and a provider")
	}
	s, op := ssoServer(t)
	home := t.TempDir()
	env := cliEnv(s, home)
	out := runLogin(t, op, env, "u-alice")
	if !strings.Contains(out, "Signed in to "+s.url+" as alice@example.com (groups: engineering)") {
		t.Fatalf("lapse login said %q", out)
	}
	path := filepath.Join(home, "lapse", "session.json")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("session file mode %v, want 0600", fi.Mode().Perm())
	}
	var f sessionFile
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &f); err != nil || !strings.HasPrefix(f.Sessions[s.url].Token, "lapse_s_") || f.Sessions[s.url].RefreshToken == "" {
		t.Fatalf("session file: %v %s", err, b)
	}

	if out, code := runEnv(t, env, "whoami"); code != 0 || !strings.Contains(out, "alice@example.com, groups: engineering") || !strings.Contains(out, "second factor") {
		t.Fatalf("whoami with the stored session: %d %s", code, out)
	}
	if out, code := runEnv(t, env, "request", "app", "--role", "read", "--for", "30m", "--reason", "sso"); code != 0 || !strings.Contains(out, "active") {
		t.Fatalf("request with the stored session: %d %s", code, out)
	}
	// The prod policy wants a factor from the last 5 minutes; alice's is
	// fresh, so the request passes without a step-up.
	if out, code := runEnv(t, env, "request", "db", "--role", "admin", "--for", "30m", "--reason", "INC-1"); code != 0 || !strings.Contains(out, "pending") {
		t.Fatalf("prod request with a fresh factor: %d %s", code, out)
	}

	// An expired session token is refreshed from the stored refresh token.
	stale := f.Sessions[s.url]
	stale.ExpiresAt = time.Now().Add(-time.Minute)
	f.Sessions[s.url] = stale
	if err := f.save(path); err != nil {
		t.Fatal(err)
	}
	// Several commands at once refresh once: a refresh token used twice
	// would revoke the session.
	var wg sync.WaitGroup
	outs := make([]string, 4)
	codes := make([]int, 4)
	for i := range outs {
		wg.Go(func() { outs[i], codes[i] = runEnv(t, env, "whoami") })
	}
	wg.Wait()
	for i := range outs {
		if codes[i] != 0 {
			t.Fatalf("whoami %d with an expired session token: %d %s", i, codes[i], outs[i])
		}
	}
	var g sessionFile
	b, _ = os.ReadFile(path)
	_ = json.Unmarshal(b, &g)
	if g.Sessions[s.url].Token == f.Sessions[s.url].Token || !g.Sessions[s.url].ExpiresAt.After(time.Now()) {
		t.Errorf("the session was not refreshed: %s", b)
	}

	if out, code := runEnv(t, env, "logout"); code != 0 || !strings.Contains(out, "Signed out") {
		t.Fatalf("logout: %d %s", code, out)
	}
	if out, code := runEnv(t, env, "whoami"); code == 0 || !strings.Contains(out, "lapse login") {
		t.Fatalf("whoami after logout: %d %s", code, out)
	}
	// The revoked token no longer works even if someone kept it.
	if out, code := runEnv(t, append(env, "LAPSE_TOKEN="+g.Sessions[s.url].Token), "whoami"); code == 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("whoami with the revoked token: %d %s", code, out)
	}
}

func TestServiceTokenEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server")
	}
	dir := t.TempDir()
	s := startServer(t, "--config", writeConfig(t, dir), "--data", filepath.Join(dir, "data"))
	out, code := s.cli(t, "carol", "token", "create", "--service", "ci-deploy", "--groups", "engineering")
	m := regexp.MustCompile(`lapse_svc_\S+`).FindString(out)
	if code != 0 || m == "" {
		t.Fatalf("token create: %d %s", code, out)
	}
	if out, code := s.cli(t, "alice", "token", "create", "--service", "x"); code == 0 || !strings.Contains(out, "only admins") {
		t.Fatalf("token create by a requester: %d %s", code, out)
	}
	env := append(cliEnv(s, t.TempDir()), "LAPSE_TOKEN="+m)
	if out, code := runEnv(t, env, "request", "app", "--role", "read", "--for", "10m", "--reason", "deploy"); code != 0 || !strings.Contains(out, "active") {
		t.Fatalf("service account request: %d %s", code, out)
	}
	if out, code := s.cli(t, "carol", "token", "ls"); code != 0 || !strings.Contains(out, "ci-deploy") || strings.Contains(out, m) {
		t.Fatalf("token ls: %d %s", code, out)
	}
	if out, code := s.cli(t, "carol", "token", "revoke", "ci-deploy", "--reason", "rotated"); code != 0 {
		t.Fatalf("token revoke: %d %s", code, out)
	}
	if out, code := runEnv(t, env, "whoami"); code == 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("whoami with a revoked service token: %d %s", code, out)
	}
}

func TestStepUpEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server and a provider")
	}
	s, op := ssoServer(t)
	// alice's second factor is 10 minutes old when she signs in.
	op.AddUser(oidctest.User{ID: "u-alice", Email: "alice@example.com", Groups: []string{"engineering"}, AMR: []string{"pwd", "otp"}, AuthAge: 10 * time.Minute})
	env := cliEnv(s, t.TempDir())
	runLogin(t, op, env, "u-alice")
	// The prod request is refused with step_up_required; the CLI signs in
	// again (max_age=300, prompt=login) and asks again.
	op.AddUser(oidctest.User{ID: "u-alice", Email: "alice@example.com", Groups: []string{"engineering"}, AMR: []string{"pwd", "otp"}})
	out := runSigningIn(t, op, env, "u-alice", "request", "db", "--role", "admin", "--for", "30m", "--reason", "INC-2")
	if !strings.Contains(out, "pending") {
		t.Fatalf("request after step-up: %s", out)
	}
	if maxAge, prompt := op.LastAuthRequest(); maxAge == nil || len(prompt) == 0 || prompt[0] != "login" {
		t.Errorf("the step-up sign-in asked for max_age %v, prompt %v", maxAge, prompt)
	}
	// A static token cannot step up: the refusal is shown as is.
	if out, code := s.cli(t, "alice", "request", "db", "--role", "admin", "--for", "30m", "--reason", "INC-3"); code == 0 || !strings.Contains(out, "second factor") {
		t.Fatalf("prod request with a static token: %d %s", code, out)
	}
}
