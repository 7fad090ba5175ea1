package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"

	"github.com/lapse-access/lapse"
)

const (
	typeUser     = types.EntityType("User")
	typeGroup    = types.EntityType("Group")
	typeResource = types.EntityType("Resource")
	typeRole     = types.EntityType("Role")
)

// actions in index order.
var actions = [...]lapse.PolicyAction{lapse.PolicyRequest, lapse.PolicyAutoApprove, lapse.PolicyApprove, lapse.PolicyExtend}

var actionUIDs = [len(actions)]types.EntityUID{
	actionUID(lapse.PolicyRequest), actionUID(lapse.PolicyAutoApprove), actionUID(lapse.PolicyApprove), actionUID(lapse.PolicyExtend),
}

func actionUID(a lapse.PolicyAction) types.EntityUID {
	return types.NewEntityUID("Action", types.String(a))
}

func lapseAction(uid types.EntityUID) lapse.PolicyAction {
	if uid.Type != "Action" {
		return ""
	}
	return lapse.PolicyAction(uid.ID)
}

func actionIndex(a lapse.PolicyAction) (int, bool) {
	i := slices.Index(actions[:], a)
	return i, i >= 0
}

func roleUID(resource, role string) types.EntityUID {
	return types.NewEntityUID(typeRole, types.String(resource+"/"+role))
}

// Engine decides with a fixed catalog and policy sets. It implements
// [lapse.Decider]. Build a new Engine when either changes.
type Engine struct {
	policies []*compiled
	byID     map[types.PolicyID]*compiled
	// anyRole, byRole and byResource index policies by action and scope.
	anyRole    [len(actions)][]*compiled
	byRole     map[string]*[len(actions)][]*compiled
	byResource map[string]*[len(actions)][]*compiled
	entities   map[types.EntityUID]types.Entity
	// roles holds the candidates of each catalog role, by resource and role.
	roles map[string]map[string]*roleEntry
	users sync.Map // user name -> *userEntry
	hash  string
	// catalog is what the engine was built for.
	catalog *lapse.Catalog
}

// roleEntry is what a decision about one role needs, built once.
type roleEntry struct {
	uid   types.EntityUID
	tz    *time.Location
	cands [len(actions)]candidates
	// ctxKeys are the context attributes the candidates read.
	ctxKeys [len(actions)]uint8
}

type userEntry struct {
	groups []string
	entity types.Entity
	// getter serves the entities of this user's decisions.
	getter getter
}

var _ lapse.Decider = (*Engine)(nil)

// New returns an engine deciding with sets (typically [Builtin] of c and
// the folder's [Load]) about the resources of c. Policy ids must be unique
// across sets.
func New(c *lapse.Catalog, sets ...*Set) (*Engine, error) {
	if c == nil {
		return nil, errNoCatalog
	}
	rs, err := resolvedSchema()
	if err != nil {
		return nil, err
	}
	e := &Engine{
		catalog:    c,
		byID:       map[types.PolicyID]*compiled{},
		byRole:     map[string]*[len(actions)][]*compiled{},
		byResource: map[string]*[len(actions)][]*compiled{},
		entities:   map[types.EntityUID]types.Entity{},
		roles:      map[string]map[string]*roleEntry{},
	}
	h := sha256.New()
	for _, s := range sets {
		e.policies = append(e.policies, s.policies...)
		h.Write([]byte(s.hash))
	}
	e.hash = "sha256:" + hex.EncodeToString(h.Sum(nil))
	if problems := duplicates(e.policies); len(problems) > 0 {
		return nil, &LoadError{Problems: problems}
	}
	for _, p := range e.policies {
		e.byID[types.PolicyID(p.id)] = p
		bucket := func(m map[string]*[len(actions)][]*compiled) *[len(actions)][]*compiled {
			b := m[p.target]
			if b == nil {
				b = new([len(actions)][]*compiled)
				m[p.target] = b
			}
			return b
		}
		var b *[len(actions)][]*compiled
		switch p.scope {
		case scopeRole:
			b = bucket(e.byRole)
		case scopeResource:
			b = bucket(e.byResource)
		default:
			b = &e.anyRole
		}
		for i := range actions {
			if p.actions&(1<<i) != 0 {
				b[i] = append(b[i], p)
			}
		}
	}
	v := validate.New(rs)
	var problems []Problem
	for _, res := range c.Resources {
		resUID := types.NewEntityUID(typeResource, types.String(res.Name))
		tags := stringSet(res.Tags)
		resAttrs := types.RecordMap{"environment": types.String(res.Environment), "tags": tags, "connector": types.String(res.Connector)}
		e.entities[resUID] = types.Entity{UID: resUID, Attributes: types.NewRecord(resAttrs)}
		byName := map[string]*roleEntry{}
		for _, role := range res.Roles {
			uid := roleUID(res.Name, role.Name)
			attrs := types.RecordMap{
				"name": types.String(role.Name), "resource": resUID,
				"environment": types.String(res.Environment), "tags": tags, "connector": types.String(res.Connector),
				"max_duration_seconds": types.Long(role.MaxDuration / time.Second), "approvals": types.Long(role.Approvals),
			}
			e.entities[uid] = types.Entity{UID: uid, Parents: types.NewEntityUIDSet(resUID), Attributes: types.NewRecord(attrs)}
			byName[role.Name] = e.entry(res.Name, role.Name, res.TimeZone)
		}
		e.roles[res.Name] = byName
	}
	for _, ent := range e.entities {
		if err := v.Entity(ent); err != nil {
			problems = append(problems, Problem{File: "catalog", Message: fmt.Sprintf("%s: %v", ent.UID, err)})
		}
	}
	if len(problems) > 0 {
		return nil, &LoadError{Problems: problems}
	}
	return e, nil
}

// entry returns the candidates for one role, in load order.
func (e *Engine) entry(resource, role string, tz *time.Location) *roleEntry {
	uid := roleUID(resource, role)
	re := &roleEntry{uid: uid, tz: tz}
	for i := range actions {
		cands := slices.Clone(e.anyRole[i])
		if b := e.byRole[string(uid.ID)]; b != nil {
			cands = append(cands, b[i]...)
		}
		if b := e.byResource[resource]; b != nil {
			cands = append(cands, b[i]...)
		}
		slices.SortStableFunc(cands, func(a, b *compiled) int { return e.order(a) - e.order(b) })
		for _, c := range cands {
			re.ctxKeys[i] |= c.ctxKeys
		}
		re.cands[i] = newCandidates(cands)
	}
	return re
}

func (e *Engine) order(c *compiled) int { return slices.Index(e.policies, c) }

// Hash returns a content hash of the engine's policy sets, for the audit
// log.
func (e *Engine) Hash() string { return e.hash }

// Len returns the number of policies in force.
func (e *Engine) Len() int { return len(e.policies) }

// policyList feeds candidates to cedar.Authorize.
type policyList []*compiled

func (l policyList) All() iter.Seq2[types.PolicyID, *cedar.Policy] {
	return func(yield func(types.PolicyID, *cedar.Policy) bool) {
		for _, c := range l {
			if !yield(types.PolicyID(c.id), c.policy) {
				return
			}
		}
	}
}

// candidates are a role's candidates for one action, with their iterator
// built once, so that handing them to cedar.Authorize allocates nothing.
type candidates struct {
	list policyList
	all  iter.Seq2[types.PolicyID, *cedar.Policy]
}

func newCandidates(l policyList) candidates { return candidates{list: l, all: l.All()} }

// All implements cedar's PolicyIterator.
func (c *candidates) All() iter.Seq2[types.PolicyID, *cedar.Policy] { return c.all }

// getter serves the entities of one decision.
type getter struct {
	e    *Engine
	user *types.Entity
}

func (g *getter) Get(uid types.EntityUID) (types.Entity, bool) {
	if uid == g.user.UID {
		return *g.user, true
	}
	ent, ok := g.e.entities[uid]
	return ent, ok
}

func (e *Engine) user(p lapse.Principal) *userEntry {
	if v, ok := e.users.Load(p.Name); ok {
		u := v.(*userEntry)
		if slices.Equal(u.groups, p.Groups) {
			return u
		}
	}
	uid := types.NewEntityUID(typeUser, types.String(p.Name))
	parents := make([]types.EntityUID, len(p.Groups))
	for i, g := range p.Groups {
		parents[i] = types.NewEntityUID(typeGroup, types.String(g))
	}
	u := &userEntry{groups: slices.Clone(p.Groups), entity: types.Entity{
		UID: uid, Parents: types.NewEntityUIDSet(parents...),
		Attributes: types.NewRecord(types.RecordMap{"name": types.String(p.Name), "groups": stringSet(p.Groups)}),
	}}
	u.getter = getter{e: e, user: &u.entity}
	e.users.Store(p.Name, u)
	return u
}

func stringSet(ss []string) types.Set {
	vs := make([]types.Value, len(ss))
	for i, s := range ss {
		vs[i] = types.String(s)
	}
	return types.NewSet(vs...)
}

// ActionDecision is the decision on one action and how it was reached.
type ActionDecision struct {
	Action   lapse.PolicyAction
	Decision lapse.Decision
	// Considered is how many policies could apply and were evaluated.
	Considered int
	// Errors are the policies that failed to evaluate, with their errors.
	Errors []string
}

// Decide implements [lapse.Decider]. It denies when no policy permits,
// when a policy forbids, and when any policy that could apply fails to
// evaluate. For AutoApprove, a denial carries the approvals needed: the
// highest of the role's configured approvals and the @approvals of the
// matching Request permits and AutoApprove forbids, and at least 1.
func (e *Engine) Decide(in lapse.DecisionInput) lapse.Decision {
	return e.decide(in).Decision
}

// Explain decides every action for in, ignoring in.Action.
func (e *Engine) Explain(in lapse.DecisionInput) []ActionDecision {
	out := make([]ActionDecision, len(actions))
	for i, a := range actions {
		in.Action = a
		out[i] = e.decide(in)
	}
	return out
}

func deny(id, reason string) lapse.Decision {
	return lapse.Decision{Policies: []string{id}, Reasons: []string{reason}}
}

func (e *Engine) decide(in lapse.DecisionInput) ActionDecision {
	ad := ActionDecision{Action: in.Action}
	ai, ok := actionIndex(in.Action)
	if !ok {
		ad.Decision = deny("default-deny", fmt.Sprintf("unknown action %q", in.Action))
		return ad
	}
	if in.Resource == nil || in.Role == nil {
		ad.Decision = deny("default-deny", "no such resource or role")
		return ad
	}
	if msg := checkInput(in); msg != "" {
		ad.Decision = deny("invalid-input", msg)
		return ad
	}
	re := e.roles[in.Resource.Name][in.Role.Name]
	u := e.user(in.Principal)
	g := &u.getter
	if re == nil {
		// A role that left the catalog: decide from what the input says.
		re = e.entry(in.Resource.Name, in.Role.Name, in.Resource.TimeZone)
		uid := re.uid
		resUID := types.NewEntityUID(typeResource, types.String(in.Resource.Name))
		g = &getter{e: &Engine{entities: map[types.EntityUID]types.Entity{uid: {UID: uid, Parents: types.NewEntityUIDSet(resUID)}}}, user: g.user}
	}
	cands := &re.cands[ai]
	ad.Considered = len(cands.list)
	req := types.Request{Principal: g.user.UID, Action: actionUIDs[ai], Resource: re.uid,
		Context: buildContext(in, re.tz, re.ctxKeys[ai])}
	dec, diag := cedar.Authorize(cands, g, req)
	d := &ad.Decision
	if n := len(diag.Errors) + len(diag.Reasons); n > 0 {
		d.Policies, d.Reasons = make([]string, 0, n), make([]string, 0, n)
	}
	for _, er := range diag.Errors {
		d.Policies = append(d.Policies, string(er.PolicyID))
		d.Reasons = append(d.Reasons, fmt.Sprintf("denied by %s: policy failed to evaluate: %s", er.PolicyID, er.Message))
		ad.Errors = append(ad.Errors, string(er.PolicyID)+": "+er.Message)
	}
	approvals := 0
	for _, r := range diag.Reasons {
		c := e.byID[r.PolicyID]
		if c == nil {
			continue // a role outside the catalog's own candidates
		}
		approvals = max(approvals, c.approvals)
		if len(diag.Errors) > 0 && !c.forbid {
			continue
		}
		d.Policies = append(d.Policies, c.id)
		d.Reasons = append(d.Reasons, c.said)
		if c.flag != "" && dec == cedar.Allow {
			d.Flags = append(d.Flags, c.flag)
		}
	}
	d.Allow = dec == cedar.Allow && len(diag.Errors) == 0
	if !d.Allow {
		d.StepUp = e.stepUp(diag)
	}
	if in.Action == lapse.PolicyAutoApprove && d.Allow {
		// A matching Request permit that asks for approvals overrides an
		// auto-approval.
		if n, ids := e.requestApprovals(in); n > 0 {
			d.Allow, d.Flags = false, nil
			approvals = n
			for _, id := range ids {
				d.Policies = append(d.Policies, id)
				d.Reasons = append(d.Reasons, "denied by "+id+": needs "+strconv.Itoa(n)+" approval(s)")
			}
		}
	} else if in.Action == lapse.PolicyAutoApprove {
		n, _ := e.requestApprovals(in)
		approvals = max(approvals, n)
	}
	if len(d.Policies) == 0 {
		d.Policies = []string{"default-deny"}
		d.Reasons = []string{fmt.Sprintf("no policy permits %s of %s/%s by %s", in.Action, in.Resource.Name, in.Role.Name, in.Principal.Name)}
	}
	if in.Action == lapse.PolicyAutoApprove && !d.Allow {
		d.Approvals = max(approvals, in.Role.Approvals, 1)
	}
	return ad
}

// requestApprovals returns the highest @approvals of the Request permits
// that match in, and their ids.
func (e *Engine) requestApprovals(in lapse.DecisionInput) (int, []string) {
	re := e.roles[in.Resource.Name][in.Role.Name]
	if re == nil {
		return 0, nil
	}
	ai, _ := actionIndex(lapse.PolicyRequest)
	var cands policyList
	for _, c := range re.cands[ai].list {
		if c.approvals > 0 && !c.forbid {
			cands = append(cands, c)
		}
	}
	if len(cands) == 0 {
		return 0, nil
	}
	in.Action = lapse.PolicyRequest
	g := &e.user(in.Principal).getter
	req := types.Request{Principal: g.user.UID, Action: actionUIDs[ai], Resource: re.uid, Context: buildContext(in, re.tz, ctxAll)}
	_, diag := cedar.Authorize(cands, g, req)
	n := 0
	var ids []string
	for _, r := range diag.Reasons {
		if c := e.byID[r.PolicyID]; c != nil {
			n = max(n, c.approvals)
			ids = append(ids, c.id)
		}
	}
	return n, ids
}

// stepUp returns the shortest @step_up of the policies that denied, or 0
// when one of them has none (or nothing forbade): only then would a fresh
// second factor lift the denial.
func (e *Engine) stepUp(diag cedar.Diagnostic) time.Duration {
	var min time.Duration
	n := 0
	note := func(id cedar.PolicyID) bool {
		c := e.byID[id]
		if c == nil || c.stepUp == 0 {
			return false
		}
		if min == 0 || c.stepUp < min {
			min = c.stepUp
		}
		n++
		return true
	}
	for _, er := range diag.Errors {
		if !note(er.PolicyID) {
			return 0
		}
	}
	for _, r := range diag.Reasons {
		if c := e.byID[r.PolicyID]; c != nil && c.forbid && !note(r.PolicyID) {
			return 0
		}
	}
	if n == 0 {
		return 0
	}
	return min
}
