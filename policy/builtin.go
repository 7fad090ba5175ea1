package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/ast"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"

	"github.com/lapse-access/lapse"
)

// BuiltinFile is the file name built-in policies report.
const BuiltinFile = "builtin"

// Builtin returns the policies equivalent to the catalog's role settings,
// with ids "builtin:RESOURCE/ROLE:KIND":
//
//   - requesters: members of the role's requesters groups may Request and
//     Extend it;
//   - max_duration: nobody may Request or Extend it for longer;
//   - approvals: a role with zero approvals is auto-approved (otherwise
//     the role's approvals are required, see [Engine.Decide]);
//   - approvers: members of the role's approvers groups may Approve.
func Builtin(c *lapse.Catalog) (*Set, error) {
	if c == nil {
		return nil, errNoCatalog
	}
	rs, err := resolvedSchema()
	if err != nil {
		return nil, err
	}
	v := validate.New(rs)
	s := &Set{}
	h := sha256.New()
	var problems []Problem
	add := func(id string, p *ast.Policy) {
		pol := cedar.NewPolicyFromAST(p)
		pol.SetFilename(BuiltinFile)
		writeHashed(h, id, pol.MarshalCedar())
		c, errs := compile(v, pol, id)
		problems = append(problems, errs...)
		if c != nil {
			s.policies = append(s.policies, c)
		}
	}
	requestOrExtend := []types.EntityUID{actionUID(lapse.PolicyRequest), actionUID(lapse.PolicyExtend)}
	for _, res := range c.Resources {
		for _, role := range res.Roles {
			uid := roleUID(res.Name, role.Name)
			base := "builtin:" + string(uid.ID) + ":"
			// One policy per group, with the group in the scope: the index
			// and cedar's scope check do the work, and no set is built per
			// evaluation.
			for _, g := range role.Requesters {
				add(groupID(base+"requesters", g, role.Requesters), ast.Annotation("reason", types.String(fmt.Sprintf("members of %v may request this role", role.Requesters))).
					Permit().PrincipalIn(types.NewEntityUID("Group", types.String(g))).ActionInSet(requestOrExtend...).ResourceEq(uid))
			}
			if role.MaxDuration > 0 {
				add(base+"max_duration", ast.Annotation("reason", types.String(fmt.Sprintf("role %s on %s may be held for at most %s", role.Name, res.Name, role.MaxDuration))).
					Forbid().ActionInSet(requestOrExtend...).ResourceEq(uid).
					When(ast.Context().Access("duration_seconds").GreaterThan(ast.Long(int64(role.MaxDuration.Seconds())))))
			}
			if role.Approvals == 0 {
				add(base+"approvals", ast.Annotation("reason", "role needs no approval").
					Permit().ActionEq(actionUID(lapse.PolicyAutoApprove)).ResourceEq(uid))
			}
			for _, g := range role.Approvers {
				add(groupID(base+"approvers", g, role.Approvers), ast.Annotation("reason", types.String(fmt.Sprintf("members of %v may approve this role", role.Approvers))).
					Permit().PrincipalIn(types.NewEntityUID("Group", types.String(g))).ActionEq(actionUID(lapse.PolicyApprove)).ResourceEq(uid))
			}
		}
	}
	problems = append(problems, duplicates(s.policies)...)
	if len(problems) > 0 {
		return nil, &LoadError{Problems: problems}
	}
	s.hash = "sha256:" + hex.EncodeToString(h.Sum(nil))
	return s, nil
}

// groupID names the built-in policy of one group of a role's list: the
// plain id when the list has one group, else the id and the group.
func groupID(id, group string, groups []string) string {
	if len(groups) == 1 {
		return id
	}
	return id + ":" + group
}
