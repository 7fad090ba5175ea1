package lapsetest

import (
	"testing"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/policy"
)

// Policies decides with the built-in policies of the catalog, compiled
// afresh for every decision, so that a test may change the catalog between
// calls. Servers compile once with [policy.New].
type Policies struct{ Catalog *lapse.Catalog }

var _ lapse.Decider = Policies{}

// Decide implements [lapse.Decider]. A catalog that does not compile
// denies.
func (p Policies) Decide(in lapse.DecisionInput) lapse.Decision {
	builtin, err := policy.Builtin(p.Catalog)
	if err != nil {
		return lapse.Decision{Policies: []string{"invalid-catalog"}, Reasons: []string{err.Error()}}
	}
	e, err := policy.New(p.Catalog, builtin)
	if err != nil {
		return lapse.Decision{Policies: []string{"invalid-catalog"}, Reasons: []string{err.Error()}}
	}
	return e.Decide(in)
}

// CompiledPolicies compiles the catalog's built-in policies once, as a
// server does.
func CompiledPolicies(t testing.TB, c *lapse.Catalog) *policy.Engine {
	t.Helper()
	builtin, err := policy.Builtin(c)
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(c, builtin)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
