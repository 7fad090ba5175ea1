package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/config"
	"github.com/lapse-access/lapse/monitor"
)

const sinksAndRules = `
audit:
  sinks:
    - name: siem
      type: syslog
      address: siem.example.com:6514
      tls: true
      ca_file: siem-ca.pem
      server_name: siem.example.com
      facility: 10
    - name: collector
      type: http
      url: https://collector.example.com/lapse
      token_env: COLLECTOR_TOKEN
      format: jsonl
      batch: 200
      timeout: 10s
monitor:
  rules:
    new_country: {severity: high, revoke: true}
    request_burst: {count: 5, window: 1m}
    unusual_hour: {enabled: false}
`

func TestParseSinksAndRules(t *testing.T) {
	cfg, err := config.Parse("/etc/lapse/lapse.yaml", []byte(good+sinksAndRules), types)
	if err != nil {
		t.Fatal(err)
	}
	want := []config.Sink{
		{Name: "siem", Type: "syslog", Address: "siem.example.com:6514", TLS: true, CAFile: "/etc/lapse/siem-ca.pem", ServerName: "siem.example.com", Facility: 10},
		{Name: "collector", Type: "http", URL: "https://collector.example.com/lapse", TokenEnv: "COLLECTOR_TOKEN", Format: "jsonl", Batch: 200, Timeout: 10 * time.Second, Facility: 13},
	}
	if len(cfg.Audit.Sinks) != 2 || cfg.Audit.Sinks[0] != want[0] || cfg.Audit.Sinks[1] != want[1] {
		t.Errorf("sinks = %+v, want %+v", cfg.Audit.Sinks, want)
	}
	r := cfg.Monitor.Rules
	if nc := r[monitor.RuleNewCountry]; !nc.Enabled || nc.Severity != lapse.SeverityHigh || !nc.Revoke {
		t.Errorf("new_country = %+v", nc)
	}
	if b := r[monitor.RuleRequestBurst]; b.Count != 5 || b.Window != time.Minute || b.Severity != lapse.SeverityMedium {
		t.Errorf("request_burst = %+v", b)
	}
	if r[monitor.RuleUnusualHour].Enabled {
		t.Error("unusual_hour stays enabled")
	}
	if !r[monitor.RuleTwoCountries].Enabled {
		t.Error("a rule not named lost its default")
	}
	// Without the blocks: no sinks, every rule on by default.
	cfg, err = config.Parse("lapse.yaml", []byte(good), types)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Audit.Sinks) != 0 || len(cfg.Monitor.Rules) != len(monitor.RuleNames) {
		t.Errorf("defaults: %+v %+v", cfg.Audit, cfg.Monitor)
	}
}

func TestParseSinksAndRulesBad(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"inline token":       {"audit:\n  sinks:\n    - {name: c, type: http, url: 'https://c.example', token: abc}\n", "never goes in the config"},
		"unknown type":       {"audit:\n  sinks:\n    - {name: c, type: kafka}\n", "type must be syslog or http"},
		"syslog no address":  {"audit:\n  sinks:\n    - {name: c, type: syslog}\n", "needs an address"},
		"http bad url":       {"audit:\n  sinks:\n    - {name: c, type: http, url: 'ftp://x'}\n", "needs a url"},
		"http url creds":     {"audit:\n  sinks:\n    - {name: c, type: http, url: 'https://u:p@x.example'}\n", "no credentials in the url"},
		"both tokens":        {"audit:\n  sinks:\n    - {name: c, type: http, url: 'https://x.example', token_env: A, token_file: b}\n", "exclude each other"},
		"bad format":         {"audit:\n  sinks:\n    - {name: c, type: http, url: 'https://x.example', format: xml}\n", "format must be json or jsonl"},
		"twice":              {"audit:\n  sinks:\n    - {name: c, type: syslog, address: 'a:1'}\n    - {name: c, type: syslog, address: 'a:1'}\n", "defined twice"},
		"ca without tls":     {"audit:\n  sinks:\n    - {name: c, type: syslog, address: 'a:1', ca_file: x}\n", "need tls: true"},
		"facility":           {"audit:\n  sinks:\n    - {name: c, type: syslog, address: 'a:1', facility: 24}\n", "facility must be 0 to 23"},
		"unknown rule":       {"monitor:\n  rules:\n    full_moon: {enabled: true}\n", `unknown key "full_moon"`},
		"bad severity":       {"monitor:\n  rules:\n    new_device: {severity: urgent}\n", "severity must be one of"},
		"count on non-burst": {"monitor:\n  rules:\n    new_device: {count: 3}\n", `unknown key "count"`},
		"zero count":         {"monitor:\n  rules:\n    denial_burst: {count: 0}\n", "count must be 1 or more"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Parse("lapse.yaml", []byte(good+tc.yaml), types)
			if !errors.Is(err, lapse.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
