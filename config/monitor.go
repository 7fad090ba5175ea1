package config

import (
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/monitor"
)

// Audit configures where the audit log is exported.
type Audit struct {
	// Sinks receive every audit record, in order.
	Sinks []Sink
}

// The types of audit export sinks.
const (
	SinkSyslog = "syslog"
	SinkHTTP   = "http"
)

// Sink is one audit export receiver.
type Sink struct {
	Name string
	// Type is [SinkSyslog] or [SinkHTTP].
	Type string
	// Address is a syslog receiver's host:port.
	Address string
	// TLS says to speak TLS to a syslog receiver.
	TLS bool
	// CAFile verifies the receiver's certificate (system roots if empty);
	// ServerName is the name it must have (the host dialled if empty).
	CAFile, ServerName string
	// Facility is the syslog facility, 0–23; default 13 (log audit).
	Facility int
	// Hostname is the syslog HOSTNAME; default the machine's name.
	Hostname string
	// URL is an HTTP collector's endpoint.
	URL string
	// TokenEnv or TokenFile hold the collector's bearer token.
	TokenEnv, TokenFile string
	// Format is json (one array per batch, the default) or jsonl.
	Format string
	// Batch is the most records per delivery; default 500.
	Batch int
	// Timeout bounds one delivery; default 30s.
	Timeout time.Duration
}

// Monitor configures the anomaly rules.
type Monitor struct {
	// Rules are the rules in force: [monitor.DefaultRules] changed by the
	// config.
	Rules monitor.Rules
}

func (p *parser) audit(n *yaml.Node, a *Audit, file string) {
	p.mapping(n, "audit", map[string]func(*yaml.Node){
		"sinks": func(n *yaml.Node) { a.Sinks = p.sinks(n, file) },
	})
}

func (p *parser) sinks(n *yaml.Node, file string) []Sink {
	if n.Kind != yaml.SequenceNode {
		p.addf(n, "audit.sinks must be a list")
		return nil
	}
	rel := func(path string) string {
		if path != "" && !filepath.IsAbs(path) && file != "" {
			return filepath.Join(filepath.Dir(file), path)
		}
		return path
	}
	var out []Sink
	for _, sn := range n.Content {
		s := Sink{Facility: -1}
		p.mapping(sn, "sink", map[string]func(*yaml.Node){
			"name":        func(n *yaml.Node) { s.Name = p.name(n, "sink") },
			"type":        func(n *yaml.Node) { s.Type = p.str(n) },
			"address":     func(n *yaml.Node) { s.Address = p.str(n) },
			"tls":         func(n *yaml.Node) { s.TLS = p.boolean(n, "tls") },
			"ca_file":     func(n *yaml.Node) { s.CAFile = rel(p.str(n)) },
			"server_name": func(n *yaml.Node) { s.ServerName = p.str(n) },
			"facility":    func(n *yaml.Node) { s.Facility = p.integer(n, "facility") },
			"hostname":    func(n *yaml.Node) { s.Hostname = p.str(n) },
			"url":         func(n *yaml.Node) { s.URL = p.str(n) },
			"token_env":   func(n *yaml.Node) { s.TokenEnv = p.str(n) },
			"token_file":  func(n *yaml.Node) { s.TokenFile = rel(p.str(n)) },
			"token": func(n *yaml.Node) {
				p.addf(n, "sink: the token never goes in the config file; use token_env or token_file")
			},
			"format":  func(n *yaml.Node) { s.Format = p.str(n) },
			"batch":   func(n *yaml.Node) { s.Batch = p.integer(n, "batch") },
			"timeout": func(n *yaml.Node) { s.Timeout = p.duration(n, "timeout") },
		})
		where := "sink " + strconv.Quote(s.Name)
		switch {
		case s.Name == "":
			p.addf(sn, "sink has no name")
			continue
		case slices.ContainsFunc(out, func(o Sink) bool { return o.Name == s.Name }):
			p.addf(sn, "%s defined twice", where)
			continue
		}
		if s.Facility > 23 {
			p.addf(sn, "%s: facility must be 0 to 23", where)
		}
		if s.Facility < 0 {
			s.Facility = 13
		}
		if s.Batch > 10000 {
			p.addf(sn, "%s: batch must be at most 10000", where)
		}
		switch s.Type {
		case SinkSyslog:
			if s.Address == "" {
				p.addf(sn, "%s: a syslog sink needs an address (host:port)", where)
			}
			if s.URL != "" || s.TokenEnv != "" || s.TokenFile != "" || s.Format != "" {
				p.addf(sn, "%s: url, token_env, token_file and format are for http sinks", where)
			}
			if !s.TLS && (s.CAFile != "" || s.ServerName != "") {
				p.addf(sn, "%s: ca_file and server_name need tls: true", where)
			}
		case SinkHTTP:
			u, err := url.Parse(s.URL)
			if s.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				p.addf(sn, "%s: an http sink needs a url such as https://collector.example.com/lapse", where)
			} else if u.User != nil {
				p.addf(sn, "%s: no credentials in the url; use token_env or token_file", where)
			}
			if s.TokenEnv != "" && s.TokenFile != "" {
				p.addf(sn, "%s: token_env and token_file exclude each other", where)
			}
			if s.Format == "" {
				s.Format = "json"
			}
			if s.Format != "json" && s.Format != "jsonl" {
				p.addf(sn, "%s: format must be json or jsonl, got %q", where, s.Format)
			}
			if s.Address != "" || s.TLS || s.Hostname != "" {
				p.addf(sn, "%s: address, tls and hostname are for syslog sinks (https URLs use TLS)", where)
			}
		default:
			p.addf(sn, "%s: type must be syslog or http, got %q", where, s.Type)
		}
		out = append(out, s)
	}
	return out
}

func (p *parser) monitor(n *yaml.Node, m *Monitor) {
	p.mapping(n, "monitor", map[string]func(*yaml.Node){
		"rules": func(n *yaml.Node) {
			keys := map[string]func(*yaml.Node){}
			for _, name := range monitor.RuleNames {
				keys[name] = func(n *yaml.Node) { m.Rules[name] = p.rule(n, name, m.Rules[name]) }
			}
			p.mapping(n, "monitor.rules", keys)
			if err := m.Rules.Validate(); err != nil {
				p.addf(n, "monitor.rules: %v", err)
			}
		},
	})
}

func (p *parser) rule(n *yaml.Node, name string, r monitor.Rule) monitor.Rule {
	burst := name == monitor.RuleRequestBurst || name == monitor.RuleDenialBurst
	keys := map[string]func(*yaml.Node){
		"enabled": func(n *yaml.Node) { r.Enabled = p.boolean(n, "enabled") },
		"revoke":  func(n *yaml.Node) { r.Revoke = p.boolean(n, "revoke") },
		"severity": func(n *yaml.Node) {
			r.Severity = p.str(n)
			if !lapse.ValidSeverity(r.Severity) {
				p.addf(n, "rule %s: severity must be one of %s, got %q", name, strings.Join(lapse.Severities, ", "), r.Severity)
			}
		},
	}
	if burst {
		keys["count"] = func(n *yaml.Node) {
			if r.Count = p.integer(n, "count"); r.Count < 1 {
				p.addf(n, "rule %s: count must be 1 or more", name)
			}
		}
		keys["window"] = func(n *yaml.Node) { r.Window = p.duration(n, "window") }
	}
	p.mapping(n, "rule "+name, keys)
	return r
}

func (p *parser) boolean(n *yaml.Node, what string) bool {
	b, err := strconv.ParseBool(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		p.addf(n, "%s: want true or false, got %q", what, n.Value)
		return false
	}
	return b
}
