package identity_test

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/client"
	"github.com/lapse-access/lapse/identity"
	"github.com/lapse-access/lapse/lapsetest/oidctest"
)

var prodRead = api.SubmitRequest{Resource: "prod-db", Role: "read", Duration: "30m", Reason: "INC-1"}

func TestStepUp(t *testing.T) {
	s := newStack(t)
	// alice's second factor is 10 minutes old.
	s.op.AddUser(oidctest.User{ID: "u-alice", Email: "alice@example.com", Groups: []string{"eng"}, AMR: []string{"pwd", "otp"}, AuthAge: 10 * time.Minute})
	old := sessionCookie(t, s.signIn(t, browser(t), "/auth/login", "u-alice")).Value

	_, err := s.client(old).Submit(t.Context(), prodRead)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized || ce.Code != "step_up_required" || ce.MaxAge != 300 {
		t.Fatalf("prod request with a 10-minute-old factor: %#v, want 401 step_up_required with max_age 300", err)
	}
	if !strings.Contains(ce.Message, "prod-fresh-mfa") && !strings.Contains(ce.Message, "5 minutes") {
		t.Errorf("step-up message %q names neither the policy nor its reason", ce.Message)
	}
	// Non-production needs no step-up.
	if _, err := s.client(old).Submit(t.Context(), api.SubmitRequest{Resource: "app", Role: "read", Duration: "30m", Reason: "x"}); err != nil {
		t.Fatalf("non-prod request: %v", err)
	}
	// A static token has no second factor at all.
	if _, err := s.client("tok-alice").Submit(t.Context(), prodRead); !errors.As(err, &ce) || ce.Code != "step_up_required" {
		t.Errorf("prod request with a static token: %v, want step_up_required", err)
	}

	// A provider that ignores max_age does not pass for a step-up.
	login := identity.LoginURL("/", 5*time.Minute)
	resp := s.signIn(t, browser(t), login, "u-alice")
	if body := readBody(t, resp); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "asked to authenticate within 5m0s") {
		t.Fatalf("step-up sign-in with a stale auth_time: %d %q", resp.StatusCode, body)
	}
	maxAge, prompt := s.op.LastAuthRequest()
	if maxAge == nil || !slices.Contains(prompt, "login") {
		t.Errorf("step-up asked the provider for max_age %v, prompt %v; want max_age and prompt=login", maxAge, prompt)
	}
	u, _ := url.Parse(login)
	if u.Query().Get("max_age") != "300" {
		t.Errorf("LoginURL = %s, want max_age=300", login)
	}

	// Authenticating again passes.
	s.op.AddUser(oidctest.User{ID: "u-alice", Email: "alice@example.com", Groups: []string{"eng"}, AMR: []string{"pwd", "otp"}})
	fresh := sessionCookie(t, s.signIn(t, browser(t), login, "u-alice")).Value
	r, err := s.client(fresh).Submit(t.Context(), prodRead)
	if err != nil {
		t.Fatalf("prod request after step-up: %v", err)
	}
	if r.State != lapse.StateActive {
		t.Errorf("request after step-up is %s, want active", r.State)
	}

	// Continuous evaluation leaves the grant alone as the factor ages.
	if n, err := s.broker.Reevaluate(t.Context(), nil); err != nil || n != 0 {
		t.Errorf("re-evaluation revoked %d grants (%v); a step-up is about the moment of asking", n, err)
	}
}

func TestGroupSync(t *testing.T) {
	s := newStack(t)
	tok := sessionCookie(t, s.signIn(t, browser(t), "/auth/login", "u-alice")).Value
	r, err := s.client(tok).Submit(t.Context(), api.SubmitRequest{Resource: "app", Role: "read", Duration: "1h", Reason: "x"})
	if err != nil || r.State != lapse.StateActive {
		t.Fatalf("submit: %+v, %v", r, err)
	}
	// Signing in again with the same groups changes nothing.
	sessionCookie(t, s.signIn(t, browser(t), "/auth/login", "u-alice"))
	if evs := s.audit(t, lapse.EvGroupsChanged); len(evs) != 0 {
		t.Fatalf("groups_changed recorded without a change: %+v", evs)
	}
	// alice leaves eng: at her next sign-in her grant is decided again and
	// revoked.
	s.op.AddUser(oidctest.User{ID: "u-alice", Email: "alice@example.com", Groups: []string{"sales"}, AMR: []string{"pwd", "otp"}})
	sessionCookie(t, s.signIn(t, browser(t), "/auth/login", "u-alice"))
	got, err := s.store.GetRequest(t.Context(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != lapse.StateEnded || got.EndReason != lapse.EndRevoked || !strings.Contains(got.Note, "no longer permitted") {
		t.Errorf("grant after the group change: %s %s %q, want ended, revoked as no longer permitted", got.State, got.EndReason, got.Note)
	}
	if evs := s.audit(t, lapse.EvGroupsChanged); len(evs) != 1 || !strings.Contains(string(evs[0].Data), "sales") {
		t.Errorf("groups_changed audit = %+v", evs)
	}
}

func TestServiceAccounts(t *testing.T) {
	s := newStack(t)
	admin, auditor := s.client("tok-carol"), s.client("tok-audrey")
	created, err := admin.CreateServiceAccount(t.Context(), "ci-deploy", []string{"eng"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.Token, "lapse_svc_") || created.CreatedBy != "carol" {
		t.Fatalf("created = %+v", created)
	}
	svc := s.client(created.Token)
	w, err := svc.Whoami(t.Context())
	if err != nil || w.Name != "ci-deploy" || !w.Service || w.Admin {
		t.Fatalf("service whoami = %+v, %v", w, err)
	}
	if r, err := svc.Submit(t.Context(), api.SubmitRequest{Resource: "app", Role: "read", Duration: "1h", Reason: "deploy 42"}); err != nil || r.User != "ci-deploy" {
		t.Fatalf("service account request: %+v, %v", r, err)
	}
	for _, c := range []*client.Client{svc, auditor, s.client("tok-alice")} {
		if _, err := c.CreateServiceAccount(t.Context(), "x", nil); !errors.Is(err, lapse.ErrForbidden) {
			t.Errorf("non-admin created a service account: %v", err)
		}
	}
	if _, err := admin.CreateServiceAccount(t.Context(), "ci-deploy", nil); !errors.Is(err, lapse.ErrConflict) {
		t.Errorf("duplicate name: %v, want conflict", err)
	}
	for _, bad := range []string{"", "bad name", "alice"} {
		if _, err := admin.CreateServiceAccount(t.Context(), bad, nil); err == nil {
			t.Errorf("service account %q was created", bad)
		}
	}
	list, err := auditor.ServiceAccounts(t.Context())
	if err != nil || len(list) != 1 || list[0].Name != "ci-deploy" {
		t.Fatalf("auditor lists %+v, %v", list, err)
	}
	if _, err := s.client("tok-alice").ServiceAccounts(t.Context()); !errors.Is(err, lapse.ErrForbidden) {
		t.Errorf("requester listed service accounts: %v", err)
	}
	if _, err := auditor.RevokeServiceAccount(t.Context(), "ci-deploy", "x"); !errors.Is(err, lapse.ErrForbidden) {
		t.Errorf("auditor revoked: %v", err)
	}
	if _, err := admin.RevokeServiceAccount(t.Context(), "ci-deploy", "rotated"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Whoami(t.Context()); !errors.Is(err, lapse.ErrUnauthenticated) || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked token: %v", err)
	}
	for _, typ := range []string{lapse.EvTokenCreated, lapse.EvTokenRevoked} {
		evs := s.audit(t, typ)
		if len(evs) != 1 || evs[0].Actor != "carol" || strings.Contains(string(evs[0].Data), created.Token) {
			t.Errorf("%s audit = %+v", typ, evs)
		}
	}
}
