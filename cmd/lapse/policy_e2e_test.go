package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
)

// TestPoliciesDecideAndReload: a Cedar forbid on a signal that is unknown
// denies (fail closed) with the policy named; an invalid edit is refused
// and the set in force stays; a valid edit takes effect without a restart
// and is audited.
func TestPoliciesDecideAndReload(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	if err := os.MkdirAll(pol, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(text string) {
		t.Helper()
		// A distinct modification time, so the change is seen.
		time.Sleep(20 * time.Millisecond)
		if err := os.WriteFile(filepath.Join(pol, "geo.cedar"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`@id("prod-from-germany")
@reason("production is reachable from Germany only")
forbid (principal, action == Action::"Request", resource)
when { resource.environment == "prod" && context.network.country != "DE" };
`)
	base, err := os.ReadFile(writeConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "lapse-policies.yaml")
	if err := os.WriteFile(cfg, append(base, []byte("policies: policies\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", cfg, "--data", filepath.Join(dir, "data"))

	out, code := s.cli(t, "alice", "request", "db", "--role", "admin", "--for", "10m", "--reason", "x")
	if code != 1 || !strings.Contains(out, "prod-from-germany") {
		t.Fatalf("unknown country: exit %d %s", code, out)
	}
	// The non-prod resource is not affected.
	if out, code := s.cli(t, "alice", "request", "app", "--role", "read", "--for", "10m", "--reason", "x"); code != 0 {
		t.Fatalf("app: exit %d %s", code, out)
	}

	write(`forbid (principal, action, resource) when { context.nope };`)
	time.Sleep(3 * time.Second)
	if !strings.Contains(s.logs(), "policies refused") {
		t.Fatalf("invalid policy not refused:\n%s", s.logs())
	}
	out, _ = s.cli(t, "alice", "request", "db", "--role", "admin", "--for", "10m", "--reason", "x")
	if !strings.Contains(out, "prod-from-germany") {
		t.Fatalf("the set in force changed after an invalid edit: %s", out)
	}

	write(`@id("no-negative-durations")
@reason("a duration must be positive")
forbid (principal, action == Action::"Request", resource)
when { context.duration_seconds < 0 };
`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, code := s.cli(t, "alice", "request", "db", "--role", "admin", "--for", "10m", "--reason", "x", "-o", "json")
		if code == 0 && strings.Contains(out, `"pending"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("valid edit not in force: %s\n%s", out, s.logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	var evs []lapse.AuditEvent
	s.cliJSON(t, "carol", &evs, "audit", "--type", "policy.changed")
	if len(evs) != 1 {
		t.Fatalf("%d policy.changed records", len(evs))
	}
}

// TestPolicyTestAndExplainCommands runs `lapse policy test` and `lapse
// policy explain` on a config with a policies folder, offline.
func TestPolicyTestAndExplainCommands(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policies")
	tests := filepath.Join(dir, "tests")
	for _, d := range []string{pol, tests} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(pol, "geo.cedar"): `@id("prod-from-germany")
@reason("production is reachable from Germany only")
forbid (principal, action == Action::"Request", resource)
when { resource.environment == "prod" && context.network.country != "DE" };
`,
		filepath.Join(tests, "geo.yaml"): `cases:
  - name: from Germany
    user: alice
    groups: [engineering]
    resource: db
    role: admin
    context: {network: {country: DE}}
    expect: {Request: allow, AutoApprove: deny}
    approvals: 1
  - name: from France
    user: alice
    groups: [engineering]
    resource: db
    role: admin
    context: {network: {country: FR}}
    expect: {Request: deny}
`,
	}
	for p, text := range files {
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	base, err := os.ReadFile(writeConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "lapse-policies.yaml")
	if err := os.WriteFile(cfg, append(base, []byte("policies: policies\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	run := (&server{}).cliNoServer
	out, code := run(t, "policy", "test", tests, "--config", cfg)
	if code != 0 || !strings.Contains(out, "2 cases, 4 checks, 0 failed") {
		t.Fatalf("policy test: exit %d\n%s", code, out)
	}
	out, code = run(t, "policy", "explain", "--config", cfg, "--user", "alice", "--resource", "db", "--role", "admin", "--country", "FR")
	if code != 0 || !strings.Contains(out, "denied by prod-from-germany: production is reachable from Germany only") || !strings.Contains(out, "needs 1 approval(s)") {
		t.Fatalf("policy explain: exit %d\n%s", code, out)
	}
	// A wrong expectation fails the run.
	if err := os.WriteFile(filepath.Join(tests, "geo.yaml"), []byte(strings.Replace(files[filepath.Join(tests, "geo.yaml")], "{Request: deny}", "{Request: allow}", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = run(t, "policy", "test", tests, "--config", cfg)
	if code != 1 || !strings.Contains(out, "FAIL geo.yaml: from France: Request: want allow, got deny") {
		t.Fatalf("failing policy test: exit %d\n%s", code, out)
	}
}
