package config_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/config"
)

// noSettings is a connector type without settings of its own.
type noSettings struct{}

func (noSettings) Settings(decode func(any) error) (any, error) {
	var s struct{}
	return s, decode(&s)
}

func (noSettings) RoleSettings(_ any, decode func(any) error) (any, error) {
	var s struct{}
	return s, decode(&s)
}

var types = map[string]config.ConnectorType{"token": noSettings{}}

const good = `
server:
  listen: 127.0.0.1:9999
  pending_ttl: 2h
users:
  - name: alice
    groups: [engineering]
    token_sha256: 2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b
  - name: bob
    groups: [leads]
    token_sha256: 81b637d8fcd2c6da6359e6963113a1170de795e4b725b84d1e0b4cfd9ec58ce9
admin_groups: [security]
resources:
  - name: orders-db
    connector: tokens
    environment: prod
    tags: [pci]
    roles:
      - name: read
        max_duration: 4h
        approvals: 0
        requesters: [engineering]
      - name: admin
        max_duration: 1d
        approvals: 1
        approvers: [leads]
        requesters: [engineering]
connectors:
  - name: tokens
    type: token
`

func TestParseGood(t *testing.T) {
	cfg, err := config.Parse("lapse.yaml", []byte(good), types)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != "127.0.0.1:9999" || cfg.Server.PendingTTL != 2*time.Hour || cfg.Server.DataDir == "" {
		t.Fatalf("server %+v", cfg.Server)
	}
	if len(cfg.Users) != 2 || cfg.Users[0].TokenSHA256[0] != 0x2b {
		t.Fatalf("users %+v", cfg.Users)
	}
	cat := lapse.Catalog{Resources: cfg.Resources}
	_, role, err := cat.Lookup("orders-db", "admin")
	if err != nil || role.MaxDuration != 24*time.Hour || role.Approvals != 1 {
		t.Fatalf("admin role %+v %v", role, err)
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each "line:col: fragment"
	}{
		{"unknown top key", "colour: red\n", []string{"1:1: config: unknown key \"colour\""}},
		{"unknown role key", strings.Replace(good, "        approvals: 0\n", "        approvals: 0\n        colour: red\n", 1),
			[]string{"22:9: resource \"orders-db\" role \"read\" (connector type token): unknown key \"colour\""}},
		{"unknown connector", strings.Replace(good, "connector: tokens", "connector: nope", 1),
			[]string{"15:16: resource \"orders-db\": unknown connector \"nope\""}},
		{"unknown connector type", strings.Replace(good, "type: token", "type: ldap", 1),
			[]string{"30:11: connector \"tokens\": unknown type \"ldap\""}},
		{"negative duration", strings.Replace(good, "max_duration: 4h", "max_duration: -4h", 1),
			[]string{"20:23: max_duration must be positive"}},
		{"bad duration", strings.Replace(good, "max_duration: 4h", "max_duration: soon", 1),
			[]string{"20:23: max_duration: invalid duration \"soon\""}},
		{"negative approvals", strings.Replace(good, "approvals: 0", "approvals: -1", 1),
			[]string{"21:20: approvals must not be negative"}},
		{"duplicate role", strings.Replace(good, "name: admin", "name: read", 1),
			[]string{"23:9: resource \"orders-db\": role \"read\" defined twice"}},
		{"duplicate user", strings.Replace(good, "name: bob", "name: alice", 1),
			[]string{"9:5: user \"alice\" defined twice"}},
		{"bad token hash", strings.Replace(good, "2bb80d537b", "zz", 1),
			[]string{"8:19: token_sha256 must be 64 hex digits"}},
		{"approvals without approvers", strings.Replace(good, "        approvers: [leads]\n", "", 1),
			[]string{"needs 1 approval(s) but lists no approvers"}},
		{"no requesters", strings.Replace(good, "        approvals: 0\n        requesters: [engineering]\n", "        approvals: 0\n", 1),
			[]string{"requesters is required"}},
		{"several at once", strings.Replace(strings.Replace(good, "max_duration: 4h", "max_duration: -1h", 1), "connector: tokens", "connector: nope", 1),
			[]string{"unknown connector \"nope\"", "max_duration must be positive"}},
		{"not yaml", "users: [\n", []string{"not valid YAML"}},
		{"repeated key", "server:\n  listen: a\n  listen: b\n", []string{"3:3: server: key \"listen\" repeated"}},
		{"database not postgres", "server:\n  database: mysql://u:hunter2@h/db\n", []string{"2:3: server.database: only PostgreSQL is supported"}},
		{"lease too short", "server:\n  lease_duration: 200ms\n", []string{"2:19: server.lease_duration must be at least 1s"}},
		{"database not a URL", "server:\n  database: 'postgres://u:hunter2@h:bad port/db'\n", []string{"server.database: not a URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("lapse.yaml", []byte(tt.yaml), types)
			var ce *config.Error
			if !errors.As(err, &ce) || !errors.Is(err, lapse.ErrInvalid) {
				t.Fatalf("got %v, want a config error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems\n%s\ndo not contain %q", err, w)
				}
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "lapse.yaml:") {
					t.Errorf("problem %q does not name the file", line)
				}
			}
		})
	}
}

func TestParseDatabase(t *testing.T) {
	yaml := strings.Replace(good, "server:\n", "server:\n  database: postgres://lapse:pw@db:5432/lapse\n  secret_key_file: keys/secret.key\n", 1)
	cfg, err := config.Parse("/etc/lapse/lapse.yaml", []byte(yaml), types)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Database != "postgres://lapse:pw@db:5432/lapse" || cfg.Server.SecretKeyFile != "/etc/lapse/keys/secret.key" {
		t.Errorf("server %+v", cfg.Server)
	}
	// A refused database URL is not quoted: it may hold a password.
	_, err = config.Parse("lapse.yaml", []byte("server:\n  database: mysql://u:hunter2@h/db\n"), types)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Parse of a bad database URL: %v", err)
	}
}
