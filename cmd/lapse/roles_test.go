package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/broker"
	"github.com/lapse-access/lapse/client"
	sshc "github.com/lapse-access/lapse/connector/ssh"
	"github.com/lapse-access/lapse/monitor"
)

// callers are the kinds of caller the table walks, in the order of its
// columns.
var callers = []struct{ name, token string }{
	{"requester", "tok-alice"},
	{"approver", "tok-bob"},
	{"auditor", "tok-audrey"},
	{"admin", "tok-carol"},
	{"service", ""}, // a service account's token, made by the test
	{"integration", "tok-mdm"},
	{"anonymous", ""},
}

// TestEveryEndpointEveryRole walks every route the server registers with
// every kind of caller, on the server `lapse serve` wires with every part
// on (audit log, monitor, single sign-on, SSH, integrations), and checks
// the status each gets. A route without a row fails the test.
func TestEveryEndpointEveryRole(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the server and a provider")
	}
	dir := t.TempDir()
	op := ssoProvider(t)
	path := writeSSOConfig(t, dir, op.Issuer)
	if _, err := sshc.LoadOrCreateCAKey(filepath.Join(dir, "ssh_ca.key")); err != nil {
		t.Fatal(err)
	}
	appendConfig(t, path, "integrations:\n  - name: mdm\n    token_sha256: "+hash("tok-mdm")+"\n")
	replaceInFile(t, path, "connectors:\n", "connectors:\n  - name: ssh-ca\n    type: ssh\n    ca_key_file: "+filepath.Join(dir, "ssh_ca.key")+
		"\n    krl_file: "+filepath.Join(dir, "krl")+"\n")
	s := startApp(t, path, func(url string) { op.AddClient("lapse", ssoSecret, url+"/auth/callback") })
	carol := client.New(s.url, "tok-carol")
	// The service account's groups name the admin and auditor groups: a
	// machine gets no administrative rights from them.
	svc, err := carol.CreateServiceAccount(t.Context(), "ci", []string{"engineering", "security", "audit"})
	if err != nil {
		t.Fatal(err)
	}
	tokens := make([]string, len(callers))
	for i, c := range callers {
		tokens[i] = c.token
	}
	tokens[4] = svc.Token

	// alice signed in with a fresh second factor, as the step-up policy
	// on prod wants.
	alice := lapse.Principal{Name: "alice", Groups: []string{"engineering"}, MFA: lapse.MFASignals{Present: lapse.FlagTrue, At: time.Now()}}
	n := 0
	// fixture makes what one call acts on: a pending request of alice's
	// that bob may approve, an active grant of alice's, a service account,
	// an open alert about alice, a web session of alice's and the audit
	// record of her pending request.
	type fixture struct {
		pending, active, account, alert, session, seq string
	}
	// fresh makes the parts of a fixture that a row names, as
	// {pending}, {active}, ... in uses.
	fresh := func(t *testing.T, uses string) fixture {
		ctx := t.Context()
		n++
		var f fixture
		needs := func(what string) bool { return strings.Contains(uses, "{"+what+"}") }
		if needs("pending") || needs("seq") {
			p, err := s.broker.Submit(ctx, alice, broker.SubmitInput{Resource: "db", Role: "admin", Duration: time.Hour, Reason: "x"})
			if err != nil || p.Request.State != lapse.StatePending {
				t.Fatalf("pending fixture: %s, %v", p.Request.State, err)
			}
			f.pending = p.Request.ID
			evs, err := s.store.ListAudit(ctx, lapse.AuditFilter{RequestID: f.pending, Limit: 1})
			if err != nil || len(evs) != 1 {
				t.Fatalf("audit record of the pending request: %v", err)
			}
			f.seq = strconv.FormatInt(evs[0].Seq, 10)
		}
		if needs("active") {
			a, err := s.broker.Submit(ctx, alice, broker.SubmitInput{Resource: "app", Role: "read", Duration: time.Hour, Reason: "x"})
			if err != nil || a.Request.State != lapse.StateActive {
				t.Fatalf("active fixture: %s, %v", a.Request.State, err)
			}
			f.active = a.Request.ID
		}
		if needs("account") {
			f.account = fmt.Sprintf("victim-%d", n)
			if _, err := carol.CreateServiceAccount(ctx, f.account, nil); err != nil {
				t.Fatal(err)
			}
		}
		if needs("alert") {
			in, err := s.watcher.Ingest(ctx, "mdm", monitor.ActivityReport{User: "alice", Resource: "db", Role: "admin", Kind: "login",
				At: time.Now().Add(-20 * 24 * time.Hour).UTC().Format(time.RFC3339)})
			if err != nil || !in.Outside {
				t.Fatalf("activity outside a grant: %+v, %v", in, err)
			}
			alerts, err := s.watcher.Alerts(ctx, lapse.AlertFilter{User: "alice", State: "open", Limit: 10000})
			if err != nil || len(alerts) == 0 {
				t.Fatalf("no open alert about alice: %v", err)
			}
			f.alert = strconv.FormatInt(slices.MaxFunc(alerts, func(a, b lapse.Alert) int { return int(a.ID - b.ID) }).ID, 10)
		}
		if needs("session") {
			web, err := s.identity.LocalSession(ctx, "tok-alice")
			if err != nil {
				t.Fatal(err)
			}
			sp, err := s.identity.AuthenticateToken(ctx, web.Token)
			if err != nil {
				t.Fatal(err)
			}
			f.session = sp.Session
		}
		return f
	}
	const (
		ok, created, found, seeOther, bad, unauth, forbidden, notFound, gone = 200, 201, 302, 303, 400, 401, 403, 404, 410
	)
	reason := `{"reason":"because"}`
	everyone := [7]int{ok, ok, ok, ok, ok, ok, ok}
	signedIn := [7]int{ok, ok, ok, ok, ok, unauth, unauth}
	readers := [7]int{forbidden, forbidden, ok, ok, forbidden, unauth, unauth}
	admins := [7]int{forbidden, forbidden, forbidden, ok, forbidden, unauth, unauth}
	integration := [7]int{unauth, unauth, unauth, unauth, unauth, created, unauth}
	tests := []struct {
		method, path, body string
		// want holds the status per caller, in the order of callers.
		want [7]int
		// shows, if set, must appear in the answers to the callers named
		// in to: what they may read is there.
		shows string
		to    []string
	}{
		{method: "GET", path: "/healthz", want: everyone},
		{method: "GET", path: "/readyz", want: everyone},
		{method: "GET", path: "/metrics", want: everyone},
		{method: "GET", path: "/.well-known/jwks.json", want: everyone},

		{method: "POST", path: "/v1/requests", body: `{"resource":"app","role":"read","duration":"1h","reason":"x"}`,
			want: [7]int{created, forbidden, forbidden, forbidden, created, unauth, unauth}},
		{method: "GET", path: "/v1/requests?state=all", want: signedIn, shows: "{active}", to: []string{"requester", "auditor", "admin"}},
		{method: "GET", path: "/v1/requests/{pending}", want: [7]int{ok, ok, ok, ok, forbidden, unauth, unauth}},
		{method: "POST", path: "/v1/requests/{pending}/approve", want: [7]int{forbidden, ok, forbidden, forbidden, forbidden, unauth, unauth}},
		{method: "POST", path: "/v1/requests/{pending}/deny", body: reason, want: [7]int{forbidden, ok, forbidden, ok, forbidden, unauth, unauth}},
		{method: "POST", path: "/v1/requests/{pending}/cancel", want: [7]int{ok, forbidden, forbidden, ok, forbidden, unauth, unauth}},
		{method: "POST", path: "/v1/requests/{active}/release", want: [7]int{ok, forbidden, forbidden, forbidden, forbidden, unauth, unauth}},
		{method: "POST", path: "/v1/requests/{active}/revoke", body: reason, want: [7]int{ok, forbidden, forbidden, ok, forbidden, unauth, unauth}},
		{method: "POST", path: "/v1/requests/{active}/extend", body: `{"duration":"30m","reason":"more"}`,
			want: [7]int{ok, forbidden, forbidden, forbidden, forbidden, unauth, unauth}},
		{method: "POST", path: "/v1/requests/{active}/credentials", want: [7]int{gone, forbidden, forbidden, forbidden, forbidden, unauth, unauth}},
		{method: "GET", path: "/v1/requests/{pending}/evidence", want: [7]int{ok, forbidden, ok, ok, forbidden, unauth, unauth},
			shows: "{pending}", to: []string{"requester", "auditor", "admin"}},
		{method: "POST", path: "/v1/check", body: `{"user":"alice","resource":"app","role":"read"}`,
			want: [7]int{ok, forbidden, ok, ok, forbidden, unauth, unauth}},

		{method: "GET", path: "/v1/audit?request={active}", want: signedIn, shows: "{active}", to: []string{"requester", "auditor", "admin"}},
		{method: "GET", path: "/v1/audit?user=alice", want: [7]int{ok, forbidden, ok, ok, forbidden, unauth, unauth}},
		{method: "GET", path: "/v1/audit/verify", want: readers, shows: `"ok":true`, to: []string{"auditor", "admin"}},
		{method: "GET", path: "/v1/audit/checkpoint", want: signedIn},
		{method: "POST", path: "/v1/audit/checkpoint", want: admins},
		{method: "GET", path: "/v1/audit/key", want: signedIn},
		{method: "GET", path: "/v1/audit/export", want: readers, shows: "{active}", to: []string{"auditor", "admin"}},
		// Whether a record exists is not for those who may not read it.
		{method: "GET", path: "/v1/audit/{seq}/proof", want: [7]int{ok, notFound, ok, ok, notFound, unauth, unauth},
			shows: "{pending}", to: []string{"requester", "auditor", "admin"}},
		{method: "GET", path: "/v1/report?since=2000-01-01T00:00:00Z", want: readers, shows: "{active}", to: []string{"auditor", "admin"}},

		{method: "GET", path: "/v1/alerts?user=alice&state=open", want: readers, shows: `"id":{alert},`, to: []string{"auditor", "admin"}},
		{method: "POST", path: "/v1/alerts/{alert}/ack", want: admins},
		{method: "POST", path: "/v1/activity", body: `{"user":"alice","resource":"app","role":"read","request_id":"{active}","kind":"login"}`,
			want: integration},
		{method: "POST", path: "/v1/devices/laptop-1/posture", body: `{"owner":"alice","managed":true,"disk_encrypted":true,"os_up_to_date":true}`,
			want: [7]int{unauth, unauth, unauth, unauth, unauth, ok, unauth}},

		{method: "GET", path: "/v1/resources", want: signedIn},
		{method: "GET", path: "/v1/whoami", want: signedIn},
		{method: "GET", path: "/v1/ssh/ca.pub", want: signedIn},
		{method: "GET", path: "/v1/ssh/krl", want: signedIn},

		// Sign-in: the browser goes to the provider; the callback and the
		// token exchange want what only a sign-in hands out.
		{method: "GET", path: "/auth/login?return=/", want: [7]int{found, found, found, found, found, found, found}},
		{method: "GET", path: "/auth/callback?state=forged&code=forged", want: [7]int{unauth, unauth, unauth, unauth, unauth, unauth, unauth}},
		{method: "POST", path: "/auth/token", body: `{"grant_type":"refresh_token","refresh_token":"lapse_r_forged"}`,
			want: [7]int{unauth, unauth, unauth, unauth, unauth, unauth, unauth}},
		// Static and service tokens have no session to end.
		{method: "POST", path: "/v1/logout", want: [7]int{bad, bad, bad, bad, bad, unauth, unauth}},
		{method: "GET", path: "/v1/sessions", want: signedIn},
		{method: "GET", path: "/v1/sessions?user=alice", want: [7]int{ok, forbidden, ok, ok, forbidden, unauth, unauth},
			shows: "{session}", to: []string{"requester", "auditor", "admin"}},
		{method: "POST", path: "/v1/sessions/{session}/revoke", body: `{"user":"alice","reason":"lost laptop"}`,
			want: [7]int{ok, forbidden, forbidden, ok, forbidden, unauth, unauth}},
		{method: "POST", path: "/v1/tokens", body: `{"service":"new-{account}","groups":["engineering"]}`, want: [7]int{forbidden, forbidden, forbidden, created, forbidden, unauth, unauth}},
		{method: "GET", path: "/v1/tokens", want: readers, shows: "{account}", to: []string{"auditor", "admin"}},
		{method: "POST", path: "/v1/tokens/{account}/revoke", body: reason, want: admins},

		// The web UI takes no bearer token: everyone is sent to sign in.
		{method: "GET", path: "/", want: [7]int{seeOther, seeOther, seeOther, seeOther, seeOther, seeOther, seeOther}},
		{method: "GET", path: "/v1/no-such-endpoint", want: [7]int{notFound, notFound, notFound, notFound, notFound, unauth, unauth}},
	}

	// Every route has a row: the rows' requests are matched to the
	// registered patterns the way the server matches them.
	routes := http.NewServeMux()
	for _, pattern := range s.api.Routes() {
		routes.Handle(pattern, http.NotFoundHandler())
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		req, _ := http.NewRequest(tc.method, s.url+strings.NewReplacer("{", "x", "}", "x").Replace(tc.path), nil)
		_, pattern := routes.Handler(req)
		if pattern == "" {
			t.Errorf("row %s %s matches no route", tc.method, tc.path)
		}
		covered[pattern] = true
	}
	for _, pattern := range s.api.Routes() {
		if !covered[pattern] {
			t.Errorf("route %q has no row in the table: say who may call it", pattern)
		}
	}

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range tests {
		for i, caller := range callers {
			t.Run(tc.method+" "+tc.path+"/"+caller.name, func(t *testing.T) {
				f := fresh(t, tc.path+tc.body+tc.shows)
				r := strings.NewReplacer("{pending}", f.pending, "{active}", f.active, "{account}", f.account,
					"{alert}", f.alert, "{session}", f.session, "{seq}", f.seq)
				var body io.Reader
				if tc.body != "" {
					body = bytes.NewBufferString(r.Replace(tc.body))
				}
				req, _ := http.NewRequestWithContext(t.Context(), tc.method, s.url+r.Replace(tc.path), body)
				if tokens[i] != "" {
					req.Header.Set("Authorization", "Bearer "+tokens[i])
				}
				resp, err := noRedirect.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				var e struct {
					Error struct{ Message string } `json:"error"`
				}
				_ = json.Unmarshal(b, &e)
				if resp.StatusCode != tc.want[i] {
					t.Errorf("%s %s as %s: %d (%s), want %d", tc.method, tc.path, caller.name, resp.StatusCode, e.Error.Message, tc.want[i])
				}
				if want := r.Replace(tc.shows); tc.shows != "" && slices.Contains(tc.to, caller.name) && !bytes.Contains(b, []byte(want)) {
					t.Errorf("%s %s as %s does not show %s:\n%.2000s", tc.method, tc.path, caller.name, want, b)
				}
			})
		}
	}
}

// replaceInFile replaces the first old in the file at path with new.
func replaceInFile(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s lacks %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}
