package config

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/monitor"
)

// Config is a validated lapse.yaml.
type Config struct {
	Server Server
	Users  []User
	// Integrations are device management systems that report posture,
	// each with its own token.
	Integrations []User
	AdminGroups  []string
	// AuditorGroups may read everything and change nothing.
	AuditorGroups []string
	// OIDC, if set, turns on single sign-on.
	OIDC       *OIDC
	Connectors []Connector
	Resources  []lapse.Resource
	// Policies is the folder of Cedar policies, if any.
	Policies string
	// Network says how request addresses become signals.
	Network Network
	// Audit says where the audit log is exported.
	Audit Audit
	// Monitor configures the anomaly rules.
	Monitor Monitor
}

// Network configures network signals.
type Network struct {
	// GeoIPDB is a MaxMind-format country database; empty means countries
	// are unknown.
	GeoIPDB string
	// Trusted are the networks that count as trusted.
	Trusted []netip.Prefix
	// TrustedProxies are the proxies whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
}

// Server holds the server settings.
type Server struct {
	// Listen is the address to serve on; default 127.0.0.1:8080.
	Listen string
	// DataDir holds the embedded database and keys; default ./lapse-data.
	DataDir string
	// Database is a PostgreSQL URL (postgres://...); empty means embedded
	// SQLite in DataDir. Several servers may share one database.
	Database string
	// SecretKeyFile holds the key (32 bytes, hex or base64) under which the
	// keys that servers sharing a database keep in it are sealed; every
	// server of the database needs the same one. Required with Database.
	SecretKeyFile string
	// PendingTTL is how long a request waits for approvals; default 24h.
	PendingTTL time.Duration
	// Issuer is the iss claim of tokens Lapse signs; default "lapse".
	Issuer string
	// ActivityInterval is how often the activity of active grants is
	// sampled from targets that report it; default 15s.
	ActivityInterval time.Duration
	// ReconcileInterval is how often targets are swept for access that no
	// grant accounts for; default 1m.
	ReconcileInterval time.Duration
	// LeaseDuration is how long a replica on a shared database holds the
	// lease of a singleton task (audit export to a sink, activity
	// sampling, reconciliation, checkpoint signing) without renewing it:
	// another replica takes over within about 4/3 of it after the holder
	// dies. Default 15s, at least 1s.
	LeaseDuration time.Duration
	// PostureMaxAge is the age after which a device's reported posture
	// counts as unknown; default 24h.
	PostureMaxAge time.Duration
	// ReevaluateInterval is how often every active grant is asked about
	// again, besides on every posture and policy change; default 5m.
	ReevaluateInterval time.Duration
	// Instance names this Lapse in the audit log's origin,
	// "lapse/<instance>", which its signed checkpoints carry; default the
	// host name when the checkpoint key is created, after which the key's
	// origin stays.
	Instance string
	// CheckpointInterval is how often a checkpoint of the audit log is
	// signed while it grows (and at shutdown); default 1m.
	CheckpointInterval time.Duration
}

// User is a local user who authenticates with a bearer token.
type User struct {
	Name   string
	Groups []string
	// TokenSHA256 is the SHA-256 of the user's bearer token.
	TokenSHA256 [32]byte
}

// Connector is one configured connector with its decoded settings.
type Connector struct {
	Name     string
	Type     string
	Settings any
}

// ConnectorType decodes and validates the settings of one connector type.
// Decode functions decode strictly: an unknown key is an error.
type ConnectorType interface {
	// Settings decodes a connector's settings (its keys other than name and
	// type).
	Settings(decode func(v any) error) (any, error)
	// RoleSettings decodes a role's connector-specific keys.
	RoleSettings(connector any, decode func(v any) error) (any, error)
}

// Problem is one thing wrong with a config file.
type Problem struct {
	Line, Column int
	Message      string
}

func (p Problem) String() string {
	if p.Line == 0 {
		return p.Message
	}
	return fmt.Sprintf("%d:%d: %s", p.Line, p.Column, p.Message)
}

// Error lists every problem found in a config file.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if e.File != "" {
			b.WriteString(e.File)
			if p.Line > 0 {
				b.WriteByte(':')
			} else {
				b.WriteString(": ")
			}
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Unwrap makes an Error match [lapse.ErrInvalid].
func (e *Error) Unwrap() error { return lapse.ErrInvalid }

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// parser collects problems while walking the YAML tree.
type parser struct {
	problems []Problem
	types    map[string]ConnectorType
}

func (p *parser) addf(n *yaml.Node, format string, args ...any) {
	pr := Problem{Message: fmt.Sprintf(format, args...)}
	if n != nil {
		pr.Line, pr.Column = n.Line, n.Column
	}
	p.problems = append(p.problems, pr)
}

// Parse reads a config file's contents. file names it in problems. types
// are the known connector types by name.
func Parse(file string, data []byte, types map[string]ConnectorType) (*Config, error) {
	p := &parser{types: types}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		msg := err.Error()
		line := 0
		if m := regexp.MustCompile(`line (\d+)`).FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		return nil, &Error{File: file, Problems: []Problem{{Line: line, Message: "not valid YAML: " + strings.TrimPrefix(msg, "yaml: ")}}}
	}
	cfg := &Config{Monitor: Monitor{Rules: monitor.DefaultRules()}}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	p.mapping(root, "config", map[string]func(*yaml.Node){
		"server":         func(n *yaml.Node) { p.server(n, &cfg.Server, file) },
		"users":          func(n *yaml.Node) { cfg.Users = p.users(n) },
		"integrations":   func(n *yaml.Node) { cfg.Integrations = p.users(n) },
		"admin_groups":   func(n *yaml.Node) { cfg.AdminGroups = p.names(n, "admin group") },
		"auditor_groups": func(n *yaml.Node) { cfg.AuditorGroups = p.names(n, "auditor group") },
		"oidc":           func(n *yaml.Node) { cfg.OIDC = p.oidc(n) },
		"connectors":     func(n *yaml.Node) { cfg.Connectors = p.connectors(n) },
		"resources":      func(n *yaml.Node) { cfg.Resources = p.resources(n, cfg.Connectors) },
		"network":        func(n *yaml.Node) { p.network(n, &cfg.Network, file) },
		"audit":          func(n *yaml.Node) { p.audit(n, &cfg.Audit, file) },
		"monitor":        func(n *yaml.Node) { p.monitor(n, &cfg.Monitor) },
		"policies": func(n *yaml.Node) {
			cfg.Policies = p.str(n)
			if cfg.Policies != "" && !filepath.IsAbs(cfg.Policies) && file != "" {
				cfg.Policies = filepath.Join(filepath.Dir(file), cfg.Policies)
			}
		},
	}, "connectors")
	applyDefaults(cfg)
	if len(p.problems) > 0 {
		return nil, &Error{File: file, Problems: p.problems}
	}
	return cfg, nil
}

func applyDefaults(c *Config) {
	if c.Server.Listen == "" {
		c.Server.Listen = "127.0.0.1:8080"
	}
	if c.Server.DataDir == "" {
		c.Server.DataDir = "lapse-data"
	}
	if c.Server.PendingTTL == 0 {
		c.Server.PendingTTL = 24 * time.Hour
	}
	if c.Server.Issuer == "" {
		c.Server.Issuer = "lapse"
	}
	if c.Server.ActivityInterval == 0 {
		c.Server.ActivityInterval = 15 * time.Second
	}
	if c.Server.ReconcileInterval == 0 {
		c.Server.ReconcileInterval = time.Minute
	}
	if c.Server.LeaseDuration == 0 {
		c.Server.LeaseDuration = 15 * time.Second
	}
	if c.Server.PostureMaxAge == 0 {
		c.Server.PostureMaxAge = 24 * time.Hour
	}
	if c.Server.CheckpointInterval == 0 {
		c.Server.CheckpointInterval = time.Minute
	}
}

// mapping walks a mapping node, calling the handler of each known key and
// reporting unknown and repeated keys. Keys listed in first are handled
// before the others, whatever their order in the file.
func (p *parser) mapping(n *yaml.Node, what string, keys map[string]func(*yaml.Node), first ...string) {
	if n == nil || n.Kind == 0 {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.addf(n, "%s must be a mapping", what)
		return
	}
	seen := map[string]bool{}
	type kv struct{ k, v *yaml.Node }
	var later []kv
	var early []kv
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			p.addf(k, "%s: key %q repeated", what, k.Value)
			continue
		}
		seen[k.Value] = true
		if _, ok := keys[k.Value]; !ok {
			known := make([]string, 0, len(keys))
			for k := range keys {
				known = append(known, k)
			}
			slices.Sort(known)
			p.addf(k, "%s: unknown key %q (known: %s)", what, k.Value, strings.Join(known, ", "))
			continue
		}
		if slices.Contains(first, k.Value) {
			early = append(early, kv{k, v})
		} else {
			later = append(later, kv{k, v})
		}
	}
	for _, e := range append(early, later...) {
		keys[e.k.Value](e.v)
	}
}

func (p *parser) str(n *yaml.Node) string {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.addf(n, "want a string")
		return ""
	}
	return n.Value
}

func (p *parser) integer(n *yaml.Node, what string) int {
	v, err := strconv.Atoi(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		p.addf(n, "%s: want a whole number, got %q", what, n.Value)
		return 0
	}
	if v < 0 {
		p.addf(n, "%s must not be negative, got %d", what, v)
	}
	return v
}

// ParseDuration parses a Go duration, also accepting whole days ("7d").
func ParseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use e.g. 30m, 4h, 7d)", s)
	}
	return d, nil
}

func (p *parser) duration(n *yaml.Node, what string) time.Duration {
	d, err := ParseDuration(p.str(n))
	if err != nil {
		p.addf(n, "%s: %v", what, err)
		return 0
	}
	if d <= 0 {
		p.addf(n, "%s must be positive, got %s", what, n.Value)
	}
	return d
}

func (p *parser) names(n *yaml.Node, what string) []string {
	if n.Kind != yaml.SequenceNode {
		p.addf(n, "%ss must be a list", what)
		return nil
	}
	var out []string
	for _, c := range n.Content {
		s := p.str(c)
		if s == "" {
			continue
		}
		if !nameRE.MatchString(s) {
			p.addf(c, "%s %q: use letters, digits, '.', '_' and '-' (at most 63)", what, s)
			continue
		}
		if slices.Contains(out, s) {
			p.addf(c, "%s %q listed twice", what, s)
			continue
		}
		out = append(out, s)
	}
	return out
}

func (p *parser) name(n *yaml.Node, what string) string {
	s := p.str(n)
	if s != "" && !nameRE.MatchString(s) {
		p.addf(n, "%s name %q: use letters, digits, '.', '_' and '-' (at most 63, starting with a letter or digit)", what, s)
	}
	return s
}

func (p *parser) server(n *yaml.Node, s *Server, file string) {
	p.mapping(n, "server", map[string]func(*yaml.Node){
		"listen":   func(n *yaml.Node) { s.Listen = p.str(n) },
		"data_dir": func(n *yaml.Node) { s.DataDir = p.str(n) },
		"database": func(n *yaml.Node) { s.Database = p.str(n) },
		"secret_key_file": func(n *yaml.Node) {
			s.SecretKeyFile = p.str(n)
			if s.SecretKeyFile != "" && !filepath.IsAbs(s.SecretKeyFile) && file != "" {
				s.SecretKeyFile = filepath.Join(filepath.Dir(file), s.SecretKeyFile)
			}
		},
		"pending_ttl": func(n *yaml.Node) { s.PendingTTL = p.duration(n, "pending_ttl") },
		"issuer":      func(n *yaml.Node) { s.Issuer = p.str(n) },
		"activity_interval": func(n *yaml.Node) {
			s.ActivityInterval = p.duration(n, "activity_interval")
		},
		"reconcile_interval": func(n *yaml.Node) {
			s.ReconcileInterval = p.duration(n, "reconcile_interval")
		},
		"lease_duration": func(n *yaml.Node) {
			s.LeaseDuration = p.duration(n, "lease_duration")
			if s.LeaseDuration > 0 && s.LeaseDuration < time.Second {
				p.addf(n, "server.lease_duration must be at least 1s, got %s", s.LeaseDuration)
			}
		},
		"posture_max_age": func(n *yaml.Node) {
			s.PostureMaxAge = p.duration(n, "posture_max_age")
		},
		"reevaluate_interval": func(n *yaml.Node) {
			s.ReevaluateInterval = p.duration(n, "reevaluate_interval")
		},
		"instance": func(n *yaml.Node) { s.Instance = p.name(n, "instance") },
		"checkpoint_interval": func(n *yaml.Node) {
			s.CheckpointInterval = p.duration(n, "checkpoint_interval")
		},
	})
	if s.Database != "" {
		if err := CheckDatabase(s.Database); err != nil {
			p.addf(n, "server.database: %v", err)
		}
	}
}

// CheckDatabase checks that dsn is a PostgreSQL URL. Its errors never
// quote dsn, which may hold a password.
func CheckDatabase(dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return errors.New("not a URL; write postgres://USER:PASSWORD@HOST:PORT/DATABASE")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return errors.New("only PostgreSQL is supported: write postgres://USER:PASSWORD@HOST:PORT/DATABASE (empty means the embedded store)")
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		return errors.New("no host in the PostgreSQL URL")
	}
	return nil
}

func (p *parser) users(n *yaml.Node) []User {
	if n.Kind != yaml.SequenceNode {
		p.addf(n, "users must be a list")
		return nil
	}
	var out []User
	hashes := map[[32]byte]string{}
	for _, un := range n.Content {
		var u User
		var hashNode *yaml.Node
		p.mapping(un, "user", map[string]func(*yaml.Node){
			"name":   func(n *yaml.Node) { u.Name = p.name(n, "user") },
			"groups": func(n *yaml.Node) { u.Groups = p.names(n, "group") },
			"token_sha256": func(n *yaml.Node) {
				hashNode = n
				b, err := hex.DecodeString(p.str(n))
				if err != nil || len(b) != 32 {
					p.addf(n, "token_sha256 must be 64 hex digits (the SHA-256 of the token: printf %%s TOKEN | sha256sum)")
					return
				}
				copy(u.TokenSHA256[:], b)
			},
		})
		if u.Name == "" {
			p.addf(un, "user has no name")
			continue
		}
		if slices.ContainsFunc(out, func(o User) bool { return o.Name == u.Name }) {
			p.addf(un, "user %q defined twice", u.Name)
		}
		if hashNode == nil {
			p.addf(un, "user %q has no token_sha256", u.Name)
		} else if other, dup := hashes[u.TokenSHA256]; dup && u.TokenSHA256 != [32]byte{} {
			p.addf(hashNode, "user %q has the same token as %q", u.Name, other)
		}
		hashes[u.TokenSHA256] = u.Name
		out = append(out, u)
	}
	return out
}

// rest returns a mapping node of n's keys other than skip, for
// connector-specific decoding.
func rest(n *yaml.Node, skip []string) *yaml.Node {
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !slices.Contains(skip, n.Content[i].Value) {
			out.Content = append(out.Content, n.Content[i], n.Content[i+1])
		}
	}
	return out
}

// strictDecode returns a decode function that decodes node into v and
// reports unknown keys.
func strictDecode(node *yaml.Node) func(v any) error {
	return func(v any) error {
		b, err := yaml.Marshal(node)
		if err != nil {
			return err
		}
		if len(node.Content) == 0 {
			return nil
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(v); err != nil {
			return errors.New(strings.ReplaceAll(strings.TrimPrefix(err.Error(), "yaml: "), "\n", "; "))
		}
		return nil
	}
}

var fieldNotFound = regexp.MustCompile(`field (\S+) not found`)

// decodeProblem reports a connector's decoding error, at the offending key
// where the error names one.
func (p *parser) decodeProblem(at, settings *yaml.Node, what string, err error) {
	ms := fieldNotFound.FindAllStringSubmatch(err.Error(), -1)
	if len(ms) == 0 {
		p.addf(at, "%s: %v", what, err)
		return
	}
	for _, m := range ms {
		key := at
		for i := 0; i+1 < len(settings.Content); i += 2 {
			if settings.Content[i].Value == m[1] {
				key = settings.Content[i]
			}
		}
		p.addf(key, "%s: unknown key %q", what, m[1])
	}
}

func (p *parser) connectors(n *yaml.Node) []Connector {
	if n.Kind != yaml.SequenceNode {
		p.addf(n, "connectors must be a list")
		return nil
	}
	var out []Connector
	for _, cn := range n.Content {
		if cn.Kind != yaml.MappingNode {
			p.addf(cn, "connector must be a mapping")
			continue
		}
		var c Connector
		var typeNode *yaml.Node
		for i := 0; i+1 < len(cn.Content); i += 2 {
			switch cn.Content[i].Value {
			case "name":
				c.Name = p.name(cn.Content[i+1], "connector")
			case "type":
				typeNode = cn.Content[i+1]
				c.Type = p.str(typeNode)
			}
		}
		switch {
		case c.Name == "":
			p.addf(cn, "connector has no name")
			continue
		case slices.ContainsFunc(out, func(o Connector) bool { return o.Name == c.Name }):
			p.addf(cn, "connector %q defined twice", c.Name)
			continue
		case typeNode == nil:
			p.addf(cn, "connector %q has no type", c.Name)
			continue
		}
		t, ok := p.types[c.Type]
		if !ok {
			known := make([]string, 0, len(p.types))
			for k := range p.types {
				known = append(known, k)
			}
			slices.Sort(known)
			p.addf(typeNode, "connector %q: unknown type %q (known: %s)", c.Name, c.Type, strings.Join(known, ", "))
			continue
		}
		settingsNode := rest(cn, []string{"name", "type"})
		settings, err := t.Settings(strictDecode(settingsNode))
		if err != nil {
			p.decodeProblem(cn, settingsNode, fmt.Sprintf("connector %q (type %s)", c.Name, c.Type), err)
			continue
		}
		c.Settings = settings
		out = append(out, c)
	}
	return out
}

var roleKeys = []string{"name", "max_duration", "approvals", "approvers", "requesters"}

func (p *parser) resources(n *yaml.Node, conns []Connector) []lapse.Resource {
	if n.Kind != yaml.SequenceNode {
		p.addf(n, "resources must be a list")
		return nil
	}
	var out []lapse.Resource
	for _, rn := range n.Content {
		var r lapse.Resource
		var connNode, rolesNode *yaml.Node
		p.mapping(rn, "resource", map[string]func(*yaml.Node){
			"name":        func(n *yaml.Node) { r.Name = p.name(n, "resource") },
			"connector":   func(n *yaml.Node) { connNode = n; r.Connector = p.str(n) },
			"environment": func(n *yaml.Node) { r.Environment = p.str(n) },
			"tags":        func(n *yaml.Node) { r.Tags = p.names(n, "tag") },
			"roles":       func(n *yaml.Node) { rolesNode = n },
		})
		if r.Name == "" {
			p.addf(rn, "resource has no name")
			continue
		}
		if slices.ContainsFunc(out, func(o lapse.Resource) bool { return o.Name == r.Name }) {
			p.addf(rn, "resource %q defined twice", r.Name)
		}
		ci := slices.IndexFunc(conns, func(c Connector) bool { return c.Name == r.Connector })
		switch {
		case connNode == nil:
			p.addf(rn, "resource %q has no connector", r.Name)
		case ci < 0:
			p.addf(connNode, "resource %q: unknown connector %q", r.Name, r.Connector)
		}
		if rolesNode == nil || rolesNode.Kind != yaml.SequenceNode || len(rolesNode.Content) == 0 {
			p.addf(rn, "resource %q needs a list of roles", r.Name)
			out = append(out, r)
			continue
		}
		for _, ron := range rolesNode.Content {
			role, ok := p.role(ron, r.Name)
			if !ok {
				continue
			}
			if _, dup := r.Role(role.Name); dup {
				p.addf(ron, "resource %q: role %q defined twice", r.Name, role.Name)
				continue
			}
			if ci >= 0 {
				c := conns[ci]
				settingsNode := rest(ron, roleKeys)
				settings, err := p.types[c.Type].RoleSettings(c.Settings, strictDecode(settingsNode))
				if err != nil {
					p.decodeProblem(ron, settingsNode, fmt.Sprintf("resource %q role %q (connector type %s)", r.Name, role.Name, c.Type), err)
				}
				role.Settings = settings
			}
			r.Roles = append(r.Roles, role)
		}
		out = append(out, r)
	}
	return out
}

func (p *parser) role(n *yaml.Node, resource string) (lapse.Role, bool) {
	var r lapse.Role
	if n.Kind != yaml.MappingNode {
		p.addf(n, "resource %q: role must be a mapping", resource)
		return r, false
	}
	var maxNode, approvalsNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "name":
			r.Name = p.name(v, "role")
		case "max_duration":
			maxNode = v
			r.MaxDuration = p.duration(v, "max_duration")
		case "approvals":
			approvalsNode = v
			r.Approvals = p.integer(v, "approvals")
		case "approvers":
			r.Approvers = p.names(v, "approver group")
		case "requesters":
			r.Requesters = p.names(v, "requester group")
		}
	}
	if r.Name == "" {
		p.addf(n, "resource %q: role has no name", resource)
		return r, false
	}
	if maxNode == nil {
		p.addf(n, "resource %q role %q: max_duration is required", resource, r.Name)
	}
	if approvalsNode == nil {
		p.addf(n, "resource %q role %q: approvals is required (0 approves automatically)", resource, r.Name)
	}
	if len(r.Requesters) == 0 {
		p.addf(n, "resource %q role %q: requesters is required (the groups that may ask)", resource, r.Name)
	}
	if r.Approvals > 0 && len(r.Approvers) == 0 {
		p.addf(n, "resource %q role %q: needs %d approval(s) but lists no approvers", resource, r.Name, r.Approvals)
	}
	return r, true
}

func (p *parser) network(n *yaml.Node, out *Network, file string) {
	prefixes := func(n *yaml.Node, what string) []netip.Prefix {
		if n.Kind != yaml.SequenceNode {
			p.addf(n, "%s must be a list of CIDR prefixes", what)
			return nil
		}
		var ps []netip.Prefix
		for _, c := range n.Content {
			pr, err := netip.ParsePrefix(p.str(c))
			if err != nil {
				if a, aerr := netip.ParseAddr(c.Value); aerr == nil {
					pr = netip.PrefixFrom(a, a.BitLen())
				} else {
					p.addf(c, "%s: %q is not a CIDR prefix such as 10.0.0.0/8", what, c.Value)
					continue
				}
			}
			if pr != pr.Masked() {
				p.addf(c, "%s: %q has host bits set; did you mean %s?", what, c.Value, pr.Masked())
				continue
			}
			ps = append(ps, pr)
		}
		return ps
	}
	p.mapping(n, "network", map[string]func(*yaml.Node){
		"geoip_db": func(n *yaml.Node) {
			out.GeoIPDB = p.str(n)
			if out.GeoIPDB != "" && !filepath.IsAbs(out.GeoIPDB) && file != "" {
				out.GeoIPDB = filepath.Join(filepath.Dir(file), out.GeoIPDB)
			}
		},
		"trusted_networks": func(n *yaml.Node) { out.Trusted = prefixes(n, "trusted_networks") },
		"trusted_proxies":  func(n *yaml.Node) { out.TrustedProxies = prefixes(n, "trusted_proxies") },
	})
}
