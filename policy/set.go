package policy

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"
	"github.com/cedar-policy/cedar-go/x/exp/schema"
	"github.com/cedar-policy/cedar-go/x/exp/schema/resolved"
	"github.com/cedar-policy/cedar-go/x/exp/schema/validate"
)

//go:embed lapse.cedarschema
var schemaText []byte

// Schema returns the Cedar schema every policy is validated against.
func Schema() []byte { return bytes.Clone(schemaText) }

var resolvedSchema = sync.OnceValues(func() (*resolved.Schema, error) {
	var s schema.Schema
	s.SetFilename("lapse.cedarschema")
	if err := s.UnmarshalCedar(schemaText); err != nil {
		return nil, fmt.Errorf("parse schema: %w", err)
	}
	return s.Resolve()
})

// Set is a parsed and validated set of policies.
type Set struct {
	policies []*compiled
	hash     string
}

// Len returns the number of policies in s.
func (s *Set) Len() int { return len(s.policies) }

// Hash returns a content hash of s, "sha256:<hex>", for the audit log.
func (s *Set) Hash() string { return s.hash }

// The context attributes, as bits of compiled.ctxKeys.
const (
	ctxDuration = 1 << iota
	ctxReason
	ctxTicket
	ctxDevice
	ctxNetwork
	ctxTime
	ctxRisk
	ctxMFA
	ctxAll = 1<<iota - 1
)

var ctxBits = map[types.String]uint8{
	"duration_seconds": ctxDuration, "reason": ctxReason, "ticket": ctxTicket, "device": ctxDevice,
	"network": ctxNetwork, "time": ctxTime, "risk": ctxRisk, "mfa": ctxMFA,
}

// resource scopes that the index can narrow.
const (
	scopeAny = iota
	scopeRole
	scopeResource
)

// compiled is one policy with what Lapse needs to know about it.
type compiled struct {
	id     string
	pos    cedar.Position
	policy *cedar.Policy
	forbid bool
	reason string
	// said is the sentence a decision reports, built once.
	said      string
	flag      string
	approvals int
	// stepUp is the @step_up age: a denial by this policy is lifted by a
	// second factor that recent.
	stepUp time.Duration
	// actions is a bit per action index that the scope admits.
	actions uint8
	// scope and target narrow the roles the policy can apply to.
	scope  int
	target string
	// ctxKeys are the context attributes the policy reads.
	ctxKeys uint8
}

var knownAnnotations = []string{"id", "reason", "flag", "approvals", "step_up"}

var parsePos = regexp.MustCompile(`at <input>:(\d+):(\d+)`)

// Parse parses and validates the Cedar files in files, keyed by file
// name. It reports every problem it finds in a [*LoadError].
func Parse(files map[string][]byte) (*Set, error) {
	rs, err := resolvedSchema()
	if err != nil {
		return nil, err
	}
	v := validate.New(rs)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	var problems []Problem
	s := &Set{}
	h := sha256.New()
	for _, name := range names {
		doc := files[name]
		writeHashed(h, filepath.Base(name), doc)
		list, err := cedar.NewPolicyListFromBytes(name, doc)
		if err != nil {
			p := Problem{File: name, Message: err.Error()}
			if m := parsePos.FindStringSubmatch(p.Message); m != nil {
				p.Line, _ = strconv.Atoi(m[1])
				p.Column, _ = strconv.Atoi(m[2])
				p.Message = strings.Replace(p.Message, m[0], "at", 1)
			}
			problems = append(problems, p)
			continue
		}
		for _, pol := range list {
			c, errs := compile(v, pol, "")
			problems = append(problems, errs...)
			if c != nil {
				s.policies = append(s.policies, c)
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

func writeHashed(h interface{ Write([]byte) (int, error) }, name string, doc []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(name)))
	h.Write(n[:])
	h.Write([]byte(name))
	binary.BigEndian.PutUint64(n[:], uint64(len(doc)))
	h.Write(n[:])
	h.Write(doc)
}

// Load parses and validates the *.cedar files in dir. It is the only
// function of the package that reads files.
func Load(dir string) (*Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read policies: %w", err)
	}
	files := make(map[string][]byte)
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".cedar") {
			continue
		}
		name := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read policies: %w", err)
		}
		files[name] = b
	}
	return Parse(files)
}

// compile validates pol and reads its annotations and scope. id, when
// set, overrides the policy's @id.
func compile(v *validate.Validator, pol *cedar.Policy, id string) (*compiled, []Problem) {
	pos := pol.Position()
	a := (*xast.Policy)(pol.AST())
	c := &compiled{pos: pos, policy: pol, forbid: pol.Effect() == cedar.Forbid}
	var problems []Problem
	problem := func(format string, args ...any) {
		problems = append(problems, Problem{File: pos.Filename, Line: pos.Line, Column: pos.Column, Policy: c.id, Message: fmt.Sprintf(format, args...)})
	}
	seen := map[types.AnnotationKey]bool{}
	for _, an := range a.Annotations {
		if seen[an.Key] {
			problem("annotation @%s given twice", an.Key)
		}
		seen[an.Key] = true
		val := string(an.Value)
		switch an.Key {
		case "id":
			c.id = val
		case "reason":
			c.reason = val
		case "flag":
			c.flag = val
		case "approvals":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 100 {
				problem("@approvals(%q) is not a number from 1 to 100", val)
			}
			c.approvals = n
		case "step_up":
			d, err := time.ParseDuration(val)
			if err != nil || d < time.Second || d > 24*time.Hour {
				problem("@step_up(%q) is not a duration from 1s to 24h, such as \"5m\"", val)
			}
			c.stepUp = d
		default:
			problem("unknown annotation @%s (known: @%s)", an.Key, strings.Join(knownAnnotations, ", @"))
		}
	}
	if id != "" {
		c.id = id
	}
	if c.id == "" {
		c.id = fmt.Sprintf("%s:%d", pos.Filename, pos.Line)
	} else if strings.TrimSpace(c.id) != c.id || strings.ContainsAny(c.id, "\n\r") {
		problem("@id(%q) has surrounding spaces or line breaks", c.id)
	}
	if err := v.Policy("", a); err != nil {
		for _, e := range flatten(err) {
			problem("%s", e.Error())
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	verb, reason := "allowed", c.reason
	if c.forbid {
		verb = "denied"
	}
	if reason == "" {
		reason = "no @reason given"
	}
	c.said = verb + " by " + c.id + ": " + reason
	c.actions = scopeActions(a.Action)
	c.scope, c.target = resourceScope(a.Resource)
	c.ctxKeys = contextKeys(a)
	return c, nil
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func duplicates(ps []*compiled) []Problem {
	var problems []Problem
	first := map[string]*compiled{}
	for _, c := range ps {
		if prev, ok := first[c.id]; ok {
			problems = append(problems, Problem{File: c.pos.Filename, Line: c.pos.Line, Column: c.pos.Column, Policy: c.id,
				Message: fmt.Sprintf("duplicate @id, first used at %s:%d", prev.pos.Filename, prev.pos.Line)})
			continue
		}
		first[c.id] = c
	}
	return problems
}

func scopeActions(sc xast.IsActionScopeNode) uint8 {
	bit := func(uid types.EntityUID) uint8 {
		if i, ok := actionIndex(lapseAction(uid)); ok {
			return 1 << i
		}
		return 0
	}
	switch sc := sc.(type) {
	case xast.ScopeTypeEq:
		return bit(sc.Entity)
	case xast.ScopeTypeIn:
		return bit(sc.Entity)
	case xast.ScopeTypeInSet:
		var m uint8
		for _, e := range sc.Entities {
			m |= bit(e)
		}
		return m
	}
	return 1<<len(actions) - 1
}

func resourceScope(sc xast.IsResourceScopeNode) (int, string) {
	var uid types.EntityUID
	switch sc := sc.(type) {
	case xast.ScopeTypeEq:
		uid = sc.Entity
	case xast.ScopeTypeIn:
		uid = sc.Entity
	case xast.ScopeTypeIsIn:
		uid = sc.Entity
	default:
		return scopeAny, ""
	}
	switch uid.Type {
	case typeRole:
		return scopeRole, string(uid.ID)
	case typeResource:
		return scopeResource, string(uid.ID)
	}
	return scopeAny, ""
}

// contextKeys returns the context attributes a reads: all of them when it
// uses the context other than by reading or testing one attribute.
func contextKeys(a *xast.Policy) uint8 {
	var keys uint8
	isContext := func(n xast.IsNode) bool {
		v, ok := n.(xast.NodeTypeVariable)
		return ok && v.Name == "context"
	}
	visit := func(n xast.IsNode) bool {
		switch n := n.(type) {
		case xast.NodeTypeAccess:
			if isContext(n.Arg) {
				keys |= ctxBits[n.Value]
				return false
			}
		case xast.NodeTypeHas:
			if isContext(n.Arg) {
				keys |= ctxBits[n.Value]
				return false
			}
		case xast.NodeTypeVariable:
			if n.Name == "context" {
				keys = ctxAll
			}
		}
		return true
	}
	for _, cond := range a.Conditions {
		xast.Inspect(xast.NewNode(cond.Body), visit)
	}
	return keys
}

// errNoCatalog is returned by Builtin without a catalog.
var errNoCatalog = errors.New("no catalog")
