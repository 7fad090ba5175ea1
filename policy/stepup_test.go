package policy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/policy"
)

func TestStepUpAnnotation(t *testing.T) {
	catalog := &lapse.Catalog{Resources: []lapse.Resource{{Name: "db", Environment: "prod", Roles: []lapse.Role{
		{Name: "read", MaxDuration: time.Hour, Requesters: []string{"eng"}}}}}}
	builtin, err := policy.Builtin(catalog)
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Parse(map[string][]byte{"p.cedar": []byte(`
@id("fresh-mfa")
@step_up("5m")
forbid (principal, action == Action::"Request", resource is Role)
unless { context.mfa has present && context.mfa.present && context.mfa has age_seconds && context.mfa.age_seconds <= 300 };

@id("no-interns")
forbid (principal in Group::"interns", action == Action::"Request", resource);
`)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(catalog, builtin, set)
	if err != nil {
		t.Fatal(err)
	}
	res, role, _ := catalog.Lookup("db", "read")
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	decide := func(groups []string, mfa lapse.MFASignals) lapse.Decision {
		return e.Decide(lapse.DecisionInput{Action: lapse.PolicyRequest, Principal: lapse.Principal{Name: "a", Groups: groups},
			Resource: res, Role: role, Duration: time.Hour, Now: now, Signals: lapse.Signals{MFA: mfa}})
	}
	tests := []struct {
		name   string
		groups []string
		mfa    lapse.MFASignals
		allow  bool
		stepUp time.Duration
	}{
		{"fresh factor", []string{"eng"}, lapse.MFASignals{Present: lapse.FlagTrue, At: now.Add(-time.Minute)}, true, 0},
		{"old factor", []string{"eng"}, lapse.MFASignals{Present: lapse.FlagTrue, At: now.Add(-10 * time.Minute)}, false, 5 * time.Minute},
		{"no factor known", []string{"eng"}, lapse.MFASignals{}, false, 5 * time.Minute},
		{"password only", []string{"eng"}, lapse.MFASignals{Present: lapse.FlagFalse}, false, 5 * time.Minute},
		// Another forbid also denies: a second factor would not help.
		{"old factor and another forbid", []string{"eng", "interns"}, lapse.MFASignals{}, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := decide(tc.groups, tc.mfa)
			if d.Allow != tc.allow || d.StepUp != tc.stepUp {
				t.Errorf("decision %+v, want allow %v, step-up %s", d, tc.allow, tc.stepUp)
			}
		})
	}
}

func TestStepUpAnnotationRefused(t *testing.T) {
	for _, v := range []string{"soon", "0s", "48h", "500ms"} {
		_, err := policy.Parse(map[string][]byte{"p.cedar": []byte(`@step_up("` + v + `") forbid (principal, action, resource);`)})
		if err == nil || !strings.Contains(err.Error(), "@step_up") {
			t.Errorf("@step_up(%q): %v, want a problem naming @step_up", v, err)
		}
	}
}
