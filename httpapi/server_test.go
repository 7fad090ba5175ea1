package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/auditlog"
	"github.com/lapse-access/lapse/client"
	"github.com/lapse-access/lapse/connector/token"
	"github.com/lapse-access/lapse/httpapi"
	"github.com/lapse-access/lapse/lapsetest/brokertest"
	"github.com/lapse-access/lapse/monitor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type stack struct {
	url   string
	store lapse.Store
	tok   *token.Connector
	audit *auditlog.Log
	key   *auditlog.FileKey
}

var users = map[string][]string{
	"alice": {"eng"},
	"dave":  {"eng"},
	"bob":   {"leads"},
	"erin":  {"leads"},
	"carol": {"security"},
}

func newStack(t testing.TB) *stack {
	t.Helper()
	catalog := &lapse.Catalog{Resources: []lapse.Resource{
		{Name: "app", Connector: "tokens", Roles: []lapse.Role{{Name: "read", MaxDuration: 4 * time.Hour, Requesters: []string{"eng"}}}},
		{Name: "db", Connector: "tokens", Roles: []lapse.Role{
			{Name: "admin", MaxDuration: time.Hour, Approvals: 1, Approvers: []string{"leads"}, Requesters: []string{"eng"}},
			{Name: "root", MaxDuration: time.Hour, Approvals: 2, Approvers: []string{"leads"}, Requesters: []string{"eng"}},
		}},
	}}
	bs := brokertest.New(t, catalog)
	principals := map[[32]byte]lapse.Principal{}
	for name, groups := range users {
		principals[sha256.Sum256([]byte("tok-"+name))] = lapse.Principal{Name: name, Groups: groups, Admin: name == "carol"}
	}
	integrations := httpapi.NewStaticTokens(map[[32]byte]lapse.Principal{sha256.Sum256([]byte("tok-mdm")): {Name: "mdm"}})
	auditKey, err := auditlog.LoadOrCreateFileKey(filepath.Join(t.TempDir(), "audit.key"), "lapse/test")
	if err != nil {
		t.Fatal(err)
	}
	audit := &auditlog.Log{Store: bs.Store, Keys: auditKey}
	watcher := &monitor.Watcher{Store: bs.Store, History: &monitor.History{Store: bs.Store}}
	bs.Broker.Store = watcher.Wrap(bs.Store)
	srv := httptest.NewServer((&httpapi.Server{Broker: bs.Broker, Auth: httpapi.NewStaticTokens(principals), Integrations: integrations,
		Tokens: verifier{bs.Tokens}, Audit: audit, Monitor: watcher}).Handler())
	t.Cleanup(srv.Close)
	return &stack{url: srv.URL, store: bs.Store, tok: bs.Tokens, audit: audit, key: auditKey}
}

type verifier struct{ c *token.Connector }

func (v verifier) VerifyToken(s string) (string, string, string, string, error) {
	cl, err := v.c.Verify(s)
	if err != nil {
		return "", "", "", "", err
	}
	return cl.ID, cl.Subject, cl.Audience[0], cl.Role, nil
}
func (v verifier) JWKS() []byte { return v.c.JWKS() }

func (s *stack) as(user string) *client.Client { return client.New(s.url, "tok-"+user) }

// snapshot counts requests and audit records, to show that bad input
// changes nothing.
func (s *stack) snapshot(t testing.TB) (int, int) {
	t.Helper()
	rs, evs := brokertest.Contents(t, s.store)
	return len(rs), len(evs)
}

func wantStatus(t *testing.T, err error, status int, fragment string) {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want HTTP %d", err, status)
	}
	if ce.Status != status || !strings.Contains(ce.Message, fragment) {
		t.Fatalf("got %d %q, want %d containing %q", ce.Status, ce.Message, status, fragment)
	}
}

func TestAuthentication(t *testing.T) {
	s := newStack(t)
	for _, tc := range []struct{ name, header string }{
		{"missing", ""}, {"unknown", "Bearer nope"}, {"wrong scheme", "Basic dG9rLWFsaWNl"}, {"empty", "Bearer "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, s.url+"/v1/whoami", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e api.Error
			_ = json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != http.StatusUnauthorized || e.Error.Code != "unauthenticated" {
				t.Fatalf("got %d %+v", resp.StatusCode, e)
			}
		})
	}
	w, err := s.as("carol").Whoami(context.Background())
	if err != nil || w.Name != "carol" || !w.Admin {
		t.Fatalf("whoami %+v %v", w, err)
	}
	// Health and JWKS need no token.
	for _, p := range []string{"/healthz", "/readyz", "/.well-known/jwks.json"} {
		resp, err := http.Get(s.url + p)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", p, resp, err)
		}
		resp.Body.Close()
	}
}

func TestAuthorizationRules(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	alice, dave, bob, carol := s.as("alice"), s.as("dave"), s.as("bob"), s.as("carol")

	// Auto-approved: alice gets a token once, in the response.
	r, err := alice.Submit(ctx, api.SubmitRequest{Resource: "app", Role: "read", Duration: "1h", Reason: "INC-1"})
	if err != nil || r.State != lapse.StateActive || r.Credentials == nil || r.Credentials.Kind != "token" {
		t.Fatalf("submit: %+v %v", r, err)
	}
	if got, _ := alice.Get(ctx, r.ID); got.Credentials != nil {
		t.Fatal("credentials shown again")
	}
	// Others may neither see, release, nor revoke it; an admin may revoke.
	_, err = dave.Get(ctx, r.ID)
	wantStatus(t, err, 403, "may not see")
	_, err = dave.Revoke(ctx, r.ID, "mine now")
	wantStatus(t, err, 403, "only an admin")
	_, err = dave.Release(ctx, r.ID)
	wantStatus(t, err, 403, "only alice")

	// Needs approval: not by alice herself, not by dave (not an approver).
	p, err := alice.Submit(ctx, api.SubmitRequest{Resource: "db", Role: "admin", Duration: "30m", Reason: "INC-2"})
	if err != nil || p.State != lapse.StatePending {
		t.Fatalf("submit pending: %+v %v", p, err)
	}
	_, err = alice.Approve(ctx, p.ID, "")
	wantStatus(t, err, 403, "cannot approve their own request")
	_, err = dave.Approve(ctx, p.ID, "")
	wantStatus(t, err, 403, "no policy permits Approve")
	toApprove, err := bob.List(ctx, client.ListOptions{ToApprove: true})
	if err != nil || len(toApprove) != 1 || toApprove[0].ID != p.ID {
		t.Fatalf("bob's queue: %+v %v", toApprove, err)
	}
	a, err := bob.Approve(ctx, p.ID, "ok")
	if err != nil || a.State != lapse.StateActive || a.Credentials != nil || !a.CredsWaiting {
		t.Fatalf("approve: %+v %v", a, err)
	}
	// The approver, the admin and other users never see the credentials.
	for _, c := range []*client.Client{bob, carol, dave} {
		_, err := c.Credentials(ctx, p.ID)
		wantStatus(t, err, 403, "for alice only")
	}
	creds, err := alice.Credentials(ctx, p.ID)
	if err != nil || creds.Value == "" {
		t.Fatalf("credentials: %v", err)
	}
	_, err = alice.Credentials(ctx, p.ID)
	wantStatus(t, err, 410, "handed out once")

	// The token checks active, and is refused once revoked.
	chk, err := dave.Check(ctx, api.CheckRequest{Token: creds.Value})
	if err != nil || !chk.Active || chk.RequestID != p.ID {
		t.Fatalf("check token: %+v %v", chk, err)
	}
	_, err = dave.Check(ctx, api.CheckRequest{User: "alice", Resource: "db", Role: "admin"})
	wantStatus(t, err, 403, "only admins and auditors may check")
	rv, err := carol.Revoke(ctx, p.ID, "audit finding")
	if err != nil || rv.State != lapse.StateEnded || rv.EndReason != lapse.EndRevoked {
		t.Fatalf("admin revoke: %+v %v", rv, err)
	}
	chk, err = dave.Check(ctx, api.CheckRequest{Token: creds.Value})
	if err != nil || chk.Active || !strings.Contains(chk.Reason, "ended") {
		t.Fatalf("check revoked token: %+v %v", chk, err)
	}
	chk, err = carol.Check(ctx, api.CheckRequest{User: "alice", Resource: "app", Role: "read"})
	if err != nil || !chk.Active {
		t.Fatalf("admin check: %+v %v", chk, err)
	}

	// Two approvals count once per distinct approver.
	q, _ := alice.Submit(ctx, api.SubmitRequest{Resource: "db", Role: "root", Duration: "10m", Reason: "INC-3"})
	if _, err := bob.Approve(ctx, q.ID, ""); err != nil {
		t.Fatal(err)
	}
	_, err = bob.Approve(ctx, q.ID, "")
	wantStatus(t, err, 409, "bob already approved")
	if got, err := s.as("erin").Approve(ctx, q.ID, ""); err != nil || got.State != lapse.StateActive {
		t.Fatalf("second approver: %+v %v", got, err)
	}

	// Non-admins read only their own audit records; admins read all.
	_, err = alice.Audit(ctx, client.AuditOptions{User: "bob"})
	wantStatus(t, err, 403, "only admins")
	evs, err := carol.AuditAll(ctx, client.AuditOptions{Request: p.ID})
	if err != nil || len(evs) < 5 {
		t.Fatalf("audit of %s: %d %v", p.ID, len(evs), err)
	}
	_, err = alice.VerifyAudit(ctx)
	wantStatus(t, err, 403, "only admins")
	v, err := carol.VerifyAudit(ctx)
	if err != nil || !v.OK || v.Records == 0 {
		t.Fatalf("verify: %+v %v", v, err)
	}
}

func raw(t *testing.T, s *stack, user, method, path string, body io.Reader) (int, api.Error) {
	t.Helper()
	req, _ := http.NewRequest(method, s.url+path, body)
	req.Header.Set("Authorization", "Bearer tok-"+user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e
}

func TestBadInputChangesNothing(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	alice := s.as("alice")
	ended, _ := alice.Submit(ctx, api.SubmitRequest{Resource: "app", Role: "read", Duration: "1h", Reason: "x"})
	if _, err := alice.Release(ctx, ended.ID); err != nil {
		t.Fatal(err)
	}
	pending, _ := alice.Submit(ctx, api.SubmitRequest{Resource: "db", Role: "root", Duration: "10m", Reason: "x"})
	if _, err := s.as("bob").Approve(ctx, pending.ID, ""); err != nil {
		t.Fatal(err)
	}

	body := func(v string) io.Reader { return strings.NewReader(v) }
	tests := []struct {
		name, user, method, path string
		body                     io.Reader
		status                   int
		fragment                 string
	}{
		{"unknown resource", "alice", "POST", "/v1/requests", body(`{"resource":"nope","role":"read","duration":"1h","reason":"x"}`), 404, `unknown resource "nope"`},
		{"unknown role", "alice", "POST", "/v1/requests", body(`{"resource":"app","role":"write","duration":"1h","reason":"x"}`), 404, `no role "write"`},
		{"zero duration", "alice", "POST", "/v1/requests", body(`{"resource":"app","role":"read","duration":"0s","reason":"x"}`), 400, "must be positive"},
		{"negative duration", "alice", "POST", "/v1/requests", body(`{"resource":"app","role":"read","duration":"-1h","reason":"x"}`), 400, "must be positive"},
		{"over max duration", "alice", "POST", "/v1/requests", body(`{"resource":"app","role":"read","duration":"5h","reason":"x"}`), 400, "exceeds the maximum of 4h0m0s"},
		{"unparsable duration", "alice", "POST", "/v1/requests", body(`{"resource":"app","role":"read","duration":"soon","reason":"x"}`), 400, `cannot parse "soon"`},
		{"empty reason", "alice", "POST", "/v1/requests", body(`{"resource":"app","role":"read","duration":"1h","reason":"  "}`), 400, "reason is required"},
		{"malformed JSON", "alice", "POST", "/v1/requests", body(`{"resource":"app",,}`), 400, "byte offset 19"},
		{"truncated JSON", "alice", "POST", "/v1/requests", body(`{"resource":"app"`), 400, "malformed JSON"},
		{"unknown field", "alice", "POST", "/v1/requests", body(`{"resource":"app","role":"read","duration":"1h","reason":"x","admin":true}`), 400, `unknown field "admin"`},
		{"wrong type", "alice", "POST", "/v1/requests", body(`{"resource":"app","role":"read","duration":3600,"reason":"x"}`), 400, `field "duration"`},
		{"trailing data", "alice", "POST", "/v1/requests", body(`{"resource":"app","role":"read","duration":"1h","reason":"x"} {}`), 400, "after the object"},
		{"body too large", "alice", "POST", "/v1/requests", bytes.NewReader(append([]byte(`{"reason":"`), bytes.Repeat([]byte("a"), httpapi.MaxBody+10)...)), 413, "larger than"},
		{"no such id", "bob", "POST", "/v1/requests/nope/approve", body(`{}`), 404, "not found"},
		{"no such id get", "alice", "GET", "/v1/requests/nope", nil, 404, "not found"},
		{"approve twice", "bob", "POST", "/v1/requests/" + pending.ID + "/approve", body(`{}`), 409, "already approved"},
		{"act on ended", "alice", "POST", "/v1/requests/" + ended.ID + "/release", body(`{}`), 409, "cannot release a request that is ended"},
		{"cancel ended", "alice", "POST", "/v1/requests/" + ended.ID + "/cancel", nil, 409, "ended"},
		{"extend ended", "alice", "POST", "/v1/requests/" + ended.ID + "/extend", body(`{"duration":"1h","reason":"x"}`), 409, "ended"},
		{"deny without reason", "bob", "POST", "/v1/requests/" + pending.ID + "/deny", body(`{"reason":""}`), 400, "reason is required"},
		{"revoke without reason", "carol", "POST", "/v1/requests/" + ended.ID + "/revoke", body(`{}`), 400, "reason is required"},
		{"bad state filter", "alice", "GET", "/v1/requests?state=sleeping", nil, 400, "state"},
		{"bad start", "alice", "POST", "/v1/requests", body(`{"resource":"app","role":"read","duration":"1h","reason":"x","start_at":"tomorrow"}`), 400, "RFC 3339"},
		{"unknown endpoint", "alice", "GET", "/v1/nothing", nil, 404, "no such endpoint"},
		{"unknown device", "alice", "POST", "/v1/requests", body(`{"resource":"app","role":"read","duration":"1h","reason":"x","device":"nope"}`), 400, `unknown device "nope"`},
		{"posture from a user's token", "alice", "POST", "/v1/devices/laptop-1/posture", body(`{"managed":true,"disk_encrypted":true,"os_up_to_date":true}`), 401, "unknown token"},
		{"inputs to a connector that takes none", "alice", "POST", "/v1/requests", body(`{"resource":"app","role":"read","duration":"1h","reason":"x","inputs":{"ssh_public_key":"ssh-ed25519 AAAA"}}`), 400, "takes no inputs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nr, na := s.snapshot(t)
			status, e := raw(t, s, tt.user, tt.method, tt.path, tt.body)
			if status != tt.status || !strings.Contains(e.Error.Message, tt.fragment) || e.Error.Code == "" {
				t.Fatalf("got %d %+v, want %d containing %q", status, e.Error, tt.status, tt.fragment)
			}
			if r, a := s.snapshot(t); r != nr || a != na {
				t.Fatalf("bad input changed state: requests %d→%d, audit %d→%d", nr, r, na, a)
			}
		})
	}
}

func TestExtend(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	alice, bob := s.as("alice"), s.as("bob")
	r, _ := alice.Submit(ctx, api.SubmitRequest{Resource: "app", Role: "read", Duration: "1h", Reason: "x"})
	e, err := alice.Extend(ctx, r.ID, "30m", "need more")
	if err != nil || !e.ExpiresAt.Equal(r.ExpiresAt.Add(30*time.Minute)) || e.Credentials == nil {
		t.Fatalf("auto extend: %+v %v", e, err)
	}
	_, err = alice.Extend(ctx, r.ID, "5h", "need more")
	wantStatus(t, err, 400, "exceeds the maximum")
	// An extension of a role that needs approval waits for it.
	p, _ := alice.Submit(ctx, api.SubmitRequest{Resource: "db", Role: "admin", Duration: "30m", Reason: "x"})
	a, _ := bob.Approve(ctx, p.ID, "")
	x, err := alice.Extend(ctx, p.ID, "15m", "more")
	if err != nil || x.Extension == nil || !x.ExpiresAt.Equal(*a.ExpiresAt) {
		t.Fatalf("pending extension: %+v %v", x, err)
	}
	_, err = alice.Approve(ctx, p.ID, "")
	wantStatus(t, err, 403, "own request")
	y, err := bob.Approve(ctx, p.ID, "fine")
	if err != nil || y.Extension != nil || !y.ExpiresAt.Equal(a.ExpiresAt.Add(15*time.Minute)) {
		t.Fatalf("approved extension: %+v %v", y, err)
	}
}

// TestOverlappingGrantsAreIndependent: two grants of the same user,
// resource and role; ending one leaves the access the other gives.
func TestOverlappingGrantsAreIndependent(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	alice, carol := s.as("alice"), s.as("carol")
	a, err := alice.Submit(ctx, api.SubmitRequest{Resource: "app", Role: "read", Duration: "1h", Reason: "first"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := alice.Submit(ctx, api.SubmitRequest{Resource: "app", Role: "read", Duration: "2h", Reason: "second"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Release(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	chk, err := carol.Check(ctx, api.CheckRequest{User: "alice", Resource: "app", Role: "read"})
	if err != nil || !chk.Active || chk.RequestID != a.ID {
		t.Fatalf("after releasing the second grant: %+v %v", chk, err)
	}
	for id, want := range map[string]bool{a.ID: true, b.ID: false} {
		tok := a.Credentials.Value
		if id == b.ID {
			tok = b.Credentials.Value
		}
		chk, err := carol.Check(ctx, api.CheckRequest{Token: tok})
		if err != nil || chk.Active != want {
			t.Fatalf("token of %s: %+v %v, want active=%v", id, chk, err, want)
		}
	}
	if _, err := carol.Revoke(ctx, a.ID, "done"); err != nil {
		t.Fatal(err)
	}
	chk, err = carol.Check(ctx, api.CheckRequest{User: "alice", Resource: "app", Role: "read"})
	if err != nil || chk.Active {
		t.Fatalf("after ending both: %+v %v", chk, err)
	}
}
