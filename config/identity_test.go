package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse/config"
)

func TestParseOIDC(t *testing.T) {
	cfg, err := config.Parse("lapse.yaml", []byte(good+`
auditor_groups: [audit]
oidc:
  issuer: https://idp.example.com
  client_id: lapse
  client_secret_env: LAPSE_OIDC_SECRET
  redirect_url: https://lapse.example.com/auth/callback
  groups_claim: roles
  allowed_domains: [Example.com]
  mfa_amr: [otp, hwk]
  session_ttl: 8h
`), types)
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.OIDC
	if o == nil || o.Issuer != "https://idp.example.com" || o.ClientSecretEnv != "LAPSE_OIDC_SECRET" || o.GroupsClaim != "roles" ||
		o.AllowedDomains[0] != "example.com" || o.SessionTTL != 8*time.Hour || o.RefreshTTL != 7*24*time.Hour || len(o.MFAMethods) != 2 {
		t.Errorf("oidc = %+v", o)
	}
	if len(cfg.AuditorGroups) != 1 || cfg.AuditorGroups[0] != "audit" {
		t.Errorf("auditor_groups = %v", cfg.AuditorGroups)
	}
}

func TestParseOIDCProblems(t *testing.T) {
	tests := []struct{ block, want string }{
		{"  issuer: https://idp.example.com\n  client_id: lapse\n  client_secret: hunter2\n", "secrets never go in this file"},
		{"  client_id: lapse\n  client_secret_env: X\n", "oidc.issuer must be"},
		{"  issuer: idp.example.com\n  client_id: lapse\n  client_secret_env: X\n", "oidc.issuer must be"},
		{"  issuer: https://idp.example.com\n  client_secret_env: X\n", "client_id is required"},
		{"  issuer: https://idp.example.com\n  client_id: lapse\n", "exactly one of client_secret_env and client_secret_file"},
		{"  issuer: https://idp.example.com\n  client_id: lapse\n  client_secret_env: X\n  client_secret_file: /f\n", "exactly one"},
		{"  issuer: https://idp.example.com\n  client_id: lapse\n  client_secret_env: X\n  redirect_url: https://lapse.example.com/\n", "ending in /auth/callback"},
		{"  issuer: https://idp.example.com\n  client_id: lapse\n  client_secret_env: X\n  session_ttl: 2d\n  refresh_ttl: 1d\n", "must not be shorter"},
		{"  issuer: https://idp.example.com\n  client_id: lapse\n  client_secret_env: X\n  tenant: x\n", "tenant"},
	}
	for _, tc := range tests {
		_, err := config.Parse("lapse.yaml", []byte(good+"oidc:\n"+tc.block), types)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("oidc block\n%s: %v, want %q", tc.block, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error repeats the inline secret: %v", err)
		}
	}
}
