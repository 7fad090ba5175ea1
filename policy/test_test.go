package policy_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/policy"
)

func TestRunTests(t *testing.T) {
	c := &lapse.Catalog{Resources: []lapse.Resource{{Name: "db", Environment: "prod", Roles: []lapse.Role{
		{Name: "read", MaxDuration: time.Hour, Requesters: []string{"eng"}},
		{Name: "admin", MaxDuration: time.Hour, Approvals: 2, Approvers: []string{"sec"}, Requesters: []string{"eng"}},
	}}}}
	bi, err := policy.Builtin(c)
	if err != nil {
		t.Fatal(err)
	}
	set, err := policy.Parse(map[string][]byte{"geo.cedar": []byte(`
@id("only-de")
@reason("production is reachable from Germany only")
forbid (principal, action == Action::"Request", resource)
when { resource.environment == "prod" && context.network.country != "DE" };
`)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := policy.New(c, bi, set)
	if err != nil {
		t.Fatal(err)
	}
	cases := `
cases:
  - name: engineer from Germany reads
    user: alice
    groups: [eng]
    resource: db
    role: read
    context: {network: {country: DE}}
    expect: {Request: allow, AutoApprove: allow}
  - name: unknown country is refused (fail closed)
    user: alice
    groups: [eng]
    resource: db
    role: read
    expect: {Request: deny}
  - name: admin needs two approvals from security
    user: alice
    groups: [eng]
    resource: db
    role: admin
    context: {network: {country: DE}}
    expect: {Request: allow, Approve: deny}
    approvals: 2
  - name: a wrong expectation
    user: bob
    groups: [sec]
    resource: db
    role: read
    context: {network: {country: DE}}
    expect: {Request: allow}
`
	rep, err := policy.RunTests(e, []byte(cases), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cases != 4 || rep.Checks != 7 || len(rep.Failures) != 1 || rep.Failures[0].Case != "a wrong expectation" {
		t.Fatalf("report %+v", rep)
	}
	for _, bad := range []string{"cases: [{user: a, resource: db, role: read}]", "cases: [{colour: red}]", "cases: [{user: a, resource: db, role: read, expect: {Request: maybe}}]", "cases: [{user: a, resource: nope, role: read, expect: {Request: deny}}]"} {
		if _, err := policy.RunTests(e, []byte(bad), time.Now()); err == nil || (!errors.Is(err, lapse.ErrInvalid) && !errors.Is(err, lapse.ErrNotFound)) {
			t.Errorf("%s: %v", bad, err)
		} else if strings.TrimSpace(err.Error()) == "" {
			t.Errorf("%s: empty error", bad)
		}
	}
}
