package policy_test

import (
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/policy"
)

func TestRules(t *testing.T) {
	t.Parallel()
	res := &lapse.Resource{Name: "db", Roles: []lapse.Role{
		{Name: "read", MaxDuration: 4 * time.Hour, Requesters: []string{"eng"}},
		{Name: "admin", MaxDuration: time.Hour, Approvals: 2, Approvers: []string{"leads"}, Requesters: []string{"eng"}},
	}}
	read, admin := &res.Roles[0], &res.Roles[1]
	alice := lapse.Principal{Name: "alice", Groups: []string{"eng"}}
	bob := lapse.Principal{Name: "bob", Groups: []string{"leads"}}
	tests := []struct {
		name     string
		in       lapse.DecisionInput
		allow    bool
		approval int
	}{
		{"requester may ask", lapse.DecisionInput{Action: lapse.PolicyRequest, Principal: alice, Resource: res, Role: read, Duration: time.Hour}, true, 0},
		{"non requester may not", lapse.DecisionInput{Action: lapse.PolicyRequest, Principal: bob, Resource: res, Role: read, Duration: time.Hour}, false, 0},
		{"over max duration", lapse.DecisionInput{Action: lapse.PolicyRequest, Principal: alice, Resource: res, Role: read, Duration: 5 * time.Hour}, false, 0},
		{"extend over max", lapse.DecisionInput{Action: lapse.PolicyExtend, Principal: alice, Resource: res, Role: admin, Duration: 2 * time.Hour}, false, 0},
		{"auto approve", lapse.DecisionInput{Action: lapse.PolicyAutoApprove, Principal: alice, Resource: res, Role: read}, true, 0},
		{"needs approvals", lapse.DecisionInput{Action: lapse.PolicyAutoApprove, Principal: alice, Resource: res, Role: admin}, false, 2},
		{"approver", lapse.DecisionInput{Action: lapse.PolicyApprove, Principal: bob, Resource: res, Role: admin}, true, 0},
		{"not approver", lapse.DecisionInput{Action: lapse.PolicyApprove, Principal: alice, Resource: res, Role: admin}, false, 0},
		{"unknown action", lapse.DecisionInput{Action: "Delete", Principal: bob, Resource: res, Role: admin}, false, 0},
		{"no resource", lapse.DecisionInput{Action: lapse.PolicyRequest, Principal: alice}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := policy.Rules{}.Decide(tt.in)
			if d.Allow != tt.allow || d.Approvals != tt.approval {
				t.Fatalf("got allow=%v approvals=%d, want %v %d (%v)", d.Allow, d.Approvals, tt.allow, tt.approval, d.Reasons)
			}
			if len(d.Policies) == 0 || len(d.Reasons) == 0 {
				t.Fatal("decision without policies or reasons")
			}
		})
	}
}
