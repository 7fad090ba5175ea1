package policy_test

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/policy"
)

func catalog() *lapse.Catalog {
	return &lapse.Catalog{Resources: []lapse.Resource{
		{Name: "orders-db", Connector: "postgres", Environment: "prod", Tags: []string{"pii"}, Roles: []lapse.Role{
			{Name: "read", MaxDuration: 4 * time.Hour, Approvals: 1},
			{Name: "admin", MaxDuration: 2 * time.Hour, Approvals: 1},
			{Name: "break-glass", MaxDuration: time.Hour, Approvals: 1},
		}},
		{Name: "staging-db", Connector: "postgres", Environment: "staging", Roles: []lapse.Role{
			{Name: "read", MaxDuration: 8 * time.Hour, Requesters: []string{"eng"}, Approvers: []string{"leads"}},
		}},
	}}
}

func realistic(t testing.TB) (*policy.Engine, *lapse.Catalog) {
	t.Helper()
	c := catalog()
	folder, err := policy.Load("testdata/realistic")
	if err != nil {
		t.Fatal(err)
	}
	builtin, err := policy.Builtin(c)
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(c, builtin, folder)
	if err != nil {
		t.Fatal(err)
	}
	return e, c
}

var now = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)

func good() lapse.Signals {
	return lapse.Signals{
		Device: lapse.DeviceSignals{ID: "mac-1", Known: lapse.FlagTrue, Managed: lapse.FlagTrue, DiskEncrypted: lapse.FlagTrue,
			OSUpToDate: lapse.FlagTrue, PostureAt: now.Add(-time.Minute)},
		Network: lapse.NetworkSignals{IP: netip.MustParseAddr("10.1.2.3"), Country: "DE", Trusted: lapse.FlagTrue},
		Risk:    lapse.RiskSignals{Known: true, Score: 10},
		MFA:     lapse.MFASignals{Present: lapse.FlagTrue, At: now.Add(-5 * time.Minute)},
	}
}

func TestRealistic(t *testing.T) {
	t.Parallel()
	e, c := realistic(t)
	alice := lapse.Principal{Name: "alice", Groups: []string{"eng", "oncall"}}
	bob := lapse.Principal{Name: "bob", Groups: []string{"eng"}}
	sec := lapse.Principal{Name: "sam", Groups: []string{"security"}}
	sre := lapse.Principal{Name: "sue", Groups: []string{"sre"}}
	lead := lapse.Principal{Name: "lee", Groups: []string{"leads"}}
	with := func(f func(*lapse.Signals)) lapse.Signals { s := good(); f(&s); return s }
	unmanaged := with(func(s *lapse.Signals) { s.Device.Managed = lapse.FlagFalse })
	unknownDevice := with(func(s *lapse.Signals) { s.Device = lapse.DeviceSignals{} })
	us := with(func(s *lapse.Signals) { s.Network.Country = "US" })
	noCountry := with(func(s *lapse.Signals) { s.Network.Country = "" })
	risky := with(func(s *lapse.Signals) { s.Risk.Score = 85 })
	noRisk := with(func(s *lapse.Signals) { s.Risk = lapse.RiskSignals{} })
	tests := []struct {
		name      string
		action    lapse.PolicyAction
		p         lapse.Principal
		res, role string
		dur       time.Duration
		ticket    string
		sig       lapse.Signals
		allow     bool
		approvals int
		policy    string // one of the deciding policies
		flag      string
	}{
		{"on-call reads prod for an hour", lapse.PolicyRequest, alice, "orders-db", "read", time.Hour, "", good(), true, 0, "oncall-prod-read", ""},
		{"on-call read auto-approved", lapse.PolicyAutoApprove, alice, "orders-db", "read", time.Hour, "", good(), true, 0, "oncall-prod-read", ""},
		{"on-call read 30m", lapse.PolicyRequest, alice, "orders-db", "read", 30 * time.Minute, "", good(), true, 0, "oncall-prod-read", ""},
		{"on-call read over an hour", lapse.PolicyRequest, alice, "orders-db", "read", 2 * time.Hour, "", good(), false, 0, "default-deny", ""},
		{"on-call read over role max", lapse.PolicyRequest, alice, "orders-db", "read", 5 * time.Hour, "", good(), false, 0, "builtin:orders-db/read:max_duration", ""},
		{"on-call read unmanaged device", lapse.PolicyRequest, alice, "orders-db", "read", time.Hour, "", unmanaged, false, 0, "prod-needs-managed-device", ""},
		{"on-call read unknown device", lapse.PolicyRequest, alice, "orders-db", "read", time.Hour, "", unknownDevice, false, 0, "prod-needs-managed-device", ""},
		{"on-call read from US", lapse.PolicyRequest, alice, "orders-db", "read", time.Hour, "", us, false, 0, "allowed-countries", ""},
		{"on-call read unknown country", lapse.PolicyRequest, alice, "orders-db", "read", time.Hour, "", noCountry, false, 0, "allowed-countries", ""},
		{"on-call read high risk", lapse.PolicyRequest, alice, "orders-db", "read", time.Hour, "", risky, false, 0, "high-risk", ""},
		{"on-call read unknown risk", lapse.PolicyRequest, alice, "orders-db", "read", time.Hour, "", noRisk, true, 0, "oncall-prod-read", ""},
		{"on-call extends read", lapse.PolicyExtend, alice, "orders-db", "read", time.Hour, "", good(), true, 0, "oncall-prod-read", ""},
		{"on-call extend unmanaged", lapse.PolicyExtend, alice, "orders-db", "read", time.Hour, "", unmanaged, false, 0, "prod-needs-managed-device", ""},
		{"engineer not on call reads prod", lapse.PolicyRequest, bob, "orders-db", "read", time.Hour, "", good(), false, 0, "default-deny", ""},
		{"engineer read not auto-approved", lapse.PolicyAutoApprove, bob, "orders-db", "read", time.Hour, "", good(), false, 1, "default-deny", ""},
		{"engineer asks prod admin", lapse.PolicyRequest, bob, "orders-db", "admin", time.Hour, "", good(), true, 0, "prod-admin-two-approvals", ""},
		{"prod admin needs two approvals", lapse.PolicyAutoApprove, bob, "orders-db", "admin", time.Hour, "", good(), false, 2, "default-deny", ""},
		{"prod admin over max", lapse.PolicyRequest, bob, "orders-db", "admin", 3 * time.Hour, "", good(), false, 0, "builtin:orders-db/admin:max_duration", ""},
		{"prod admin unmanaged", lapse.PolicyRequest, bob, "orders-db", "admin", time.Hour, "", unmanaged, false, 0, "prod-needs-managed-device", ""},
		{"prod admin from US", lapse.PolicyRequest, bob, "orders-db", "admin", time.Hour, "", us, false, 0, "allowed-countries", ""},
		{"security approves prod admin", lapse.PolicyApprove, sec, "orders-db", "admin", time.Hour, "", good(), true, 0, "security-approves-prod-admin", ""},
		{"security approves from US", lapse.PolicyApprove, sec, "orders-db", "admin", time.Hour, "", us, true, 0, "security-approves-prod-admin", ""},
		{"engineer cannot approve prod admin", lapse.PolicyApprove, bob, "orders-db", "admin", time.Hour, "", good(), false, 0, "default-deny", ""},
		{"lead cannot approve prod admin", lapse.PolicyApprove, lead, "orders-db", "admin", time.Hour, "", good(), false, 0, "default-deny", ""},
		{"security approves high risk", lapse.PolicyApprove, sec, "orders-db", "admin", time.Hour, "", risky, false, 0, "high-risk", ""},
		{"break-glass requested", lapse.PolicyRequest, sre, "orders-db", "break-glass", time.Hour, "INC-1", good(), true, 0, "break-glass", "break-glass"},
		{"break-glass auto-approved and flagged", lapse.PolicyAutoApprove, sre, "orders-db", "break-glass", time.Hour, "INC-1", good(), true, 0, "break-glass", "break-glass"},
		{"break-glass without ticket", lapse.PolicyRequest, sre, "orders-db", "break-glass", time.Hour, "", good(), false, 0, "default-deny", ""},
		{"break-glass over max", lapse.PolicyRequest, sre, "orders-db", "break-glass", 2 * time.Hour, "INC-1", good(), false, 0, "builtin:orders-db/break-glass:max_duration", ""},
		{"break-glass by engineer", lapse.PolicyRequest, bob, "orders-db", "break-glass", time.Hour, "INC-1", good(), false, 0, "default-deny", ""},
		{"break-glass from US", lapse.PolicyAutoApprove, sre, "orders-db", "break-glass", time.Hour, "INC-1", us, false, 1, "allowed-countries", ""},
		{"staging read by engineer (config)", lapse.PolicyRequest, bob, "staging-db", "read", 8 * time.Hour, "", good(), true, 0, "builtin:staging-db/read:requesters", ""},
		{"staging read unmanaged is fine", lapse.PolicyRequest, bob, "staging-db", "read", time.Hour, "", unmanaged, true, 0, "builtin:staging-db/read:requesters", ""},
		{"staging read auto-approved (config)", lapse.PolicyAutoApprove, bob, "staging-db", "read", time.Hour, "", good(), true, 0, "builtin:staging-db/read:approvals", ""},
		{"staging read by security", lapse.PolicyRequest, sec, "staging-db", "read", time.Hour, "", good(), false, 0, "default-deny", ""},
		{"staging read over max", lapse.PolicyRequest, bob, "staging-db", "read", 9 * time.Hour, "", good(), false, 0, "builtin:staging-db/read:max_duration", ""},
		{"staging approver (config)", lapse.PolicyApprove, lead, "staging-db", "read", time.Hour, "", good(), true, 0, "builtin:staging-db/read:approvers", ""},
		{"staging from US", lapse.PolicyRequest, bob, "staging-db", "read", time.Hour, "", us, false, 0, "allowed-countries", ""},
		{"unknown action", "Delete", bob, "staging-db", "read", time.Hour, "", good(), false, 0, "default-deny", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, role, err := c.Lookup(tt.res, tt.role)
			if err != nil {
				t.Fatal(err)
			}
			d := e.Decide(lapse.DecisionInput{Action: tt.action, Principal: tt.p, Resource: res, Role: role,
				Duration: tt.dur, Reason: "INC-4411", Ticket: tt.ticket, Now: now, Signals: tt.sig})
			if d.Allow != tt.allow || d.Approvals != tt.approvals {
				t.Errorf("got allow=%v approvals=%d, want %v %d: %v", d.Allow, d.Approvals, tt.allow, tt.approvals, d.Reasons)
			}
			if !slices.Contains(d.Policies, tt.policy) {
				t.Errorf("policies %v, want %s among them: %v", d.Policies, tt.policy, d.Reasons)
			}
			if tt.flag != "" && !slices.Contains(d.Flags, tt.flag) || tt.flag == "" && len(d.Flags) > 0 {
				t.Errorf("flags %v, want %q", d.Flags, tt.flag)
			}
			if len(d.Reasons) != len(d.Policies) {
				t.Errorf("reasons %v do not match policies %v", d.Reasons, d.Policies)
			}
		})
	}
}

func TestDeniedReasonNamesPolicy(t *testing.T) {
	t.Parallel()
	e, c := realistic(t)
	res, role, _ := c.Lookup("orders-db", "read")
	s := good()
	s.Device.Managed = lapse.FlagFalse
	d := e.Decide(lapse.DecisionInput{Action: lapse.PolicyRequest, Principal: lapse.Principal{Name: "a", Groups: []string{"oncall"}},
		Resource: res, Role: role, Duration: time.Hour, Now: now, Signals: s})
	want := "denied by prod-needs-managed-device: your device is not managed by the company"
	if d.Allow || !slices.Contains(d.Reasons, want) {
		t.Fatalf("reasons %q, want %q", d.Reasons, want)
	}
}

// TestFailClosed: a forbid that cannot be evaluated, because the country
// is unknown, denies instead of being skipped.
func TestFailClosed(t *testing.T) {
	t.Parallel()
	c := catalog()
	set, err := policy.Parse(map[string][]byte{"p.cedar": []byte(`
@id("everyone") permit (principal, action, resource);
@id("not-from-us") @reason("no access from the US")
forbid (principal, action, resource) when { context.network.country == "US" };
`)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(c, set)
	if err != nil {
		t.Fatal(err)
	}
	res, role, _ := c.Lookup("staging-db", "read")
	in := lapse.DecisionInput{Action: lapse.PolicyRequest, Principal: lapse.Principal{Name: "a"}, Resource: res, Role: role, Now: now, Signals: good()}
	if d := e.Decide(in); !d.Allow {
		t.Fatalf("known country: %v", d.Reasons)
	}
	in.Signals.Network.Country = ""
	d := e.Decide(in)
	if d.Allow || !slices.Contains(d.Policies, "not-from-us") {
		t.Fatalf("unknown country: allow=%v %v %v", d.Allow, d.Policies, d.Reasons)
	}
	if !strings.Contains(strings.Join(d.Reasons, "\n"), "denied by not-from-us: policy failed to evaluate") {
		t.Fatalf("reasons %q", d.Reasons)
	}
	ex := e.Explain(in)
	if len(ex) != 4 || len(ex[0].Errors) != 1 {
		t.Fatalf("explain: %+v", ex)
	}
}

func TestRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src string
		line      int
		want      string
	}{
		{"syntax", "permit (principal, action, resource)\nwhen { 1 + };", 2, "parse"},
		{"unknown attribute", "\n\npermit (principal, action, resource) when { principal.department == \"x\" };", 3, "attribute `department`"},
		{"unknown entity type", "permit (principal is Robot, action, resource);", 1, "Robot"},
		{"unknown action", "permit (principal, action == Action::\"Delete\", resource);", 1, "Delete"},
		{"unknown context", "permit (principal, action, resource) when { context.location == \"x\" };", 1, "location"},
		{"wrong type", "permit (principal, action, resource) when { context.duration_seconds == \"1h\" };", 1, ""},
		{"unknown annotation", "@reson(\"x\") permit (principal, action, resource);", 1, "@reson"},
		{"bad approvals", "@approvals(\"two\") permit (principal, action, resource);", 1, "@approvals"},
		{"duplicate id", "@id(\"a\") permit (principal, action, resource);\n@id(\"a\") permit (principal, action, resource);", 2, "duplicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := policy.Parse(map[string][]byte{"ok.cedar": []byte("permit (principal, action, resource);"), "bad.cedar": []byte(tt.src)})
			var le *policy.LoadError
			if !errors.As(err, &le) || !errors.Is(err, lapse.ErrInvalid) {
				t.Fatalf("got %v, want a LoadError", err)
			}
			p := le.Problems[0]
			if p.File != "bad.cedar" || p.Line != tt.line || !strings.Contains(p.String(), tt.want) {
				t.Fatalf("got %s, want bad.cedar:%d with %q", p, tt.line, tt.want)
			}
		})
	}
}

func TestHash(t *testing.T) {
	t.Parallel()
	a, _ := policy.Parse(map[string][]byte{"a.cedar": []byte("permit (principal, action, resource);")})
	b, _ := policy.Parse(map[string][]byte{"a.cedar": []byte("forbid (principal, action, resource);")})
	a2, _ := policy.Parse(map[string][]byte{"a.cedar": []byte("permit (principal, action, resource);")})
	if a.Hash() == b.Hash() || a.Hash() != a2.Hash() || !strings.HasPrefix(a.Hash(), "sha256:") {
		t.Fatalf("hashes %s %s %s", a.Hash(), b.Hash(), a2.Hash())
	}
}
