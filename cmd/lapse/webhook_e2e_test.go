package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/connector/webhook"
)

// TestWebhookGrant drives a webhook resource through the server: the
// receiver sees signed provision and revoke calls and the credentials it
// returns reach the requester once.
func TestWebhookGrant(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	secret := strings.Repeat("s", webhook.MinSecretLen)
	var mu sync.Mutex
	var events []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		sig := r.Header.Get("Lapse-Signature")
		ts, _, _ := strings.Cut(strings.TrimPrefix(sig, "t="), ",")
		sec, _ := strconv.ParseInt(ts, 10, 64)
		if sig == "" || webhook.Sign([]byte(secret), body, time.Unix(sec, 0)) != sig {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var b webhook.Body
		if err := json.Unmarshal(body, &b); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mu.Lock()
		events = append(events, b.Event+" "+b.User+" "+b.Resource+"/"+b.Role)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if b.Event == "provision" {
			_, _ = w.Write([]byte(`{"credentials":{"kind":"text","value":"vpn-pass-123","instructions":"log in to the VPN"}}`))
			return
		}
		_, _ = w.Write([]byte(`{"receipt":{"disabled":"yes"}}`))
	}))
	defer recv.Close()

	dir := t.TempDir()
	base, err := os.ReadFile(writeConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(base), "connectors:\n", "connectors:\n  - name: vpn-hook\n    type: webhook\n    provision_url: "+recv.URL+"/provision\n    revoke_url: "+recv.URL+"/revoke\n    secret_env: VPN_HOOK_SECRET\n", 1) + `  - name: vpn
    connector: vpn-hook
    roles:
      - name: user
        max_duration: 1h
        approvals: 0
        requesters: [engineering]
        params: {profile: engineering}
`
	cfgPath := filepath.Join(dir, "lapse-hook.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := (&server{}).cliNoServer(t, "config", "check", cfgPath); code != 0 {
		t.Fatalf("config check: %s", out)
	}
	s := startServerEnv(t, []string{"VPN_HOOK_SECRET=" + secret}, "--config", cfgPath, "--data", filepath.Join(dir, "data"))
	var r api.Request
	s.cliJSON(t, "alice", &r, "request", "vpn", "--role", "user", "--for", "30m", "--reason", "on call")
	if r.State != lapse.StateActive || r.Credentials == nil || r.Credentials.Value != "vpn-pass-123" {
		t.Fatalf("request: %+v", r)
	}
	var rel api.Request
	s.cliJSON(t, "alice", &rel, "release", r.ID)
	if rel.State != lapse.StateEnded {
		t.Fatalf("release: %+v", rel)
	}
	mu.Lock()
	got := strings.Join(events, "; ")
	mu.Unlock()
	if got != "provision alice vpn/user; revoke alice vpn/user" {
		t.Fatalf("receiver saw: %s", got)
	}
	var evs []lapse.AuditEvent
	s.cliJSON(t, "carol", &evs, "audit", "--request", r.ID)
	for _, e := range evs {
		if strings.Contains(string(e.Data), "vpn-pass-123") || strings.Contains(string(e.Data), secret) {
			t.Fatalf("a secret reached the audit log: %s", e.Data)
		}
	}
	if strings.Contains(s.logs(), secret) {
		t.Fatal("the signing secret reached the log")
	}
}
