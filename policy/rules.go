package policy

import (
	"fmt"

	"github.com/lapse-access/lapse"
)

// Rules decides from the resource configuration alone, without Cedar
// ([Builtin] turns the same settings into policies for [Engine]): a role's
// requesters may ask, its approvers may approve, and a role with zero
// approvals is approved without a human. It denies by default.
type Rules struct{}

var _ lapse.Decider = Rules{}

// Decide implements [lapse.Decider].
func (Rules) Decide(in lapse.DecisionInput) lapse.Decision {
	if in.Resource == nil || in.Role == nil {
		return lapse.Decision{Policies: []string{"default-deny"}, Reasons: []string{"no such resource or role"}}
	}
	id := func(kind string) []string {
		return []string{fmt.Sprintf("%s/%s/%s", in.Resource.Name, in.Role.Name, kind)}
	}
	switch in.Action {
	case lapse.PolicyRequest, lapse.PolicyExtend:
		if in.Role.MaxDuration > 0 && in.Duration > in.Role.MaxDuration {
			return lapse.Decision{Policies: id("max_duration"), Reasons: []string{
				fmt.Sprintf("%s exceeds the maximum of %s for role %s on %s", in.Duration, in.Role.MaxDuration, in.Role.Name, in.Resource.Name)}}
		}
		if !in.Principal.InAny(in.Role.Requesters) {
			return lapse.Decision{Policies: id("requesters"), Reasons: []string{
				fmt.Sprintf("%s is not in any group allowed to request role %s on %s (%v)", in.Principal.Name, in.Role.Name, in.Resource.Name, in.Role.Requesters)}}
		}
		return lapse.Decision{Allow: true, Policies: id("requesters"), Reasons: []string{"requester is in an allowed group"}}
	case lapse.PolicyAutoApprove:
		if in.Role.Approvals == 0 {
			return lapse.Decision{Allow: true, Policies: id("approvals"), Reasons: []string{"role needs no approval"}}
		}
		return lapse.Decision{Approvals: in.Role.Approvals, Policies: id("approvals"), Reasons: []string{
			fmt.Sprintf("role needs %d approval(s) from %v", in.Role.Approvals, in.Role.Approvers)}}
	case lapse.PolicyApprove:
		if !in.Principal.InAny(in.Role.Approvers) {
			return lapse.Decision{Policies: id("approvers"), Reasons: []string{
				fmt.Sprintf("%s is not in any approver group of role %s on %s (%v)", in.Principal.Name, in.Role.Name, in.Resource.Name, in.Role.Approvers)}}
		}
		return lapse.Decision{Allow: true, Policies: id("approvers"), Reasons: []string{"approver is in an approver group"}}
	}
	return lapse.Decision{Policies: []string{"default-deny"}, Reasons: []string{fmt.Sprintf("unknown action %q", in.Action)}}
}
