package policy_test

import (
	"testing"

	"github.com/lapse-access/lapse/policy"
)

// FuzzParse feeds the loader arbitrary policy text: it must refuse what it
// cannot compile with an error, never panic. Seeds are in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add(`permit (principal, action, resource);`)
	f.Add(`@id("x") forbid (principal in Group::"g", action == Action::"Request", resource is Role) when { context.duration_seconds > 3600 };`)
	f.Add(`permit (principal, action, resource) when { context.network.country == "DE" && context.risk.score < 80 };`)
	f.Add(`@approvals("2") permit (principal, action in [Action::"Request"], resource == Role::"db/admin");`)
	f.Fuzz(func(t *testing.T, text string) {
		set, err := policy.Parse(map[string][]byte{"fuzz.cedar": []byte(text)})
		if err == nil && set == nil {
			t.Fatal("no set and no error")
		}
	})
}
