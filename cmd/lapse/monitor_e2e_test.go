package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
)

// seqCollector is an HTTP collector that keeps the sequence numbers it
// received.
type seqCollector struct {
	token string
	mu    sync.Mutex
	seqs  []int64
}

func (c *seqCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+c.token {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	var evs []lapse.AuditEvent
	if err := json.NewDecoder(r.Body).Decode(&evs); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, e := range evs {
		c.seqs = append(c.seqs, e.Seq)
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (c *seqCollector) got() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int64(nil), c.seqs...)
}

// postAs posts body to url with a bearer token and returns the status and
// the answer's body.
func postAs(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// postActivity reports activity with an integration's token.
func postActivity(t *testing.T, s *server, token, body string) (int, string) {
	t.Helper()
	return postAs(t, s.url+"/v1/activity", token, body)
}

func TestEndToEndMonitoring(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	col := &seqCollector{token: "collector-s3cret-0123456789"}
	hs := httptest.NewServer(col)
	defer hs.Close()
	dir := t.TempDir()
	cfg := writeConfig(t, dir)
	base, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf(`integrations:
  - name: bastion
    token_sha256: %s
audit:
  sinks:
    - name: collector
      type: http
      url: %s/ingest
      token_env: COLLECTOR_TOKEN
monitor:
  rules:
    request_burst: {count: 2, window: 1h, severity: high, revoke: true}
policies: policies
`, hash("tok-bastion"), hs.URL)
	if err := os.WriteFile(cfg, append(base, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	// Without a device, a request's risk is 30; an open alert adds 15.
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o700); err != nil {
		t.Fatal(err)
	}
	risky := `@id("risky")
@reason("risk too high")
forbid (principal, action == Action::"Request", resource) when { context.risk.score >= 45 };
`
	if err := os.WriteFile(filepath.Join(dir, "policies", "risk.cedar"), []byte(risky), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServerEnv(t, []string{"COLLECTOR_TOKEN=" + col.token}, "--config", cfg, "--data", filepath.Join(dir, "data"))

	var first, second api.Request
	s.cliJSON(t, "alice", &first, "request", "app", "--role", "read", "--for", "1h", "--reason", "INC-1")
	s.cliJSON(t, "alice", &second, "request", "app", "--role", "read", "--for", "1h", "--reason", "INC-2")
	// The second request makes a burst; its rule revokes the grant.
	r := waitState(t, s, second.ID, lapse.StateEnded, 15*time.Second)
	if r.EndedBy != "lapse-monitor" || r.EndReason != lapse.EndRevoked || !strings.Contains(r.Note, "request_burst") {
		t.Fatalf("second grant ended by %q (%s): %q", r.EndedBy, r.EndReason, r.Note)
	}

	// The open alert raises alice's risk score: policy now refuses her.
	if out, code := s.cli(t, "alice", "request", "app", "--role", "read", "--for", "1h", "--reason", "INC-3"); code == 0 || !strings.Contains(out, "risky") {
		t.Fatalf("request with an open alert: exit %d %s", code, out)
	}

	// Activity under alice's first grant is tied to it.
	code, body := postActivity(t, s, "tok-bastion", `{"user":"alice","resource":"app","role":"read","kind":"login","source_ip":"192.0.2.7","details":{"host":"app-1"}}`)
	var res api.ActivityResult
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &res) != nil || res.RequestID != first.ID || res.Outside {
		t.Fatalf("activity: %d %s", code, body)
	}
	// Activity without a grant is an anomaly.
	code, body = postActivity(t, s, "tok-bastion", `{"user":"alice","resource":"db","role":"admin","kind":"session"}`)
	if code != http.StatusCreated || !strings.Contains(body, `"outside_grant":true`) {
		t.Fatalf("activity outside a grant: %d %s", code, body)
	}
	// Bad input changes nothing.
	var before []lapse.AuditEvent
	s.cliJSON(t, "carol", &before, "audit")
	for _, bad := range []struct {
		token, body string
		status      int
	}{
		{"tok-bastion", `{"user":"alice","resource":"app","role":"read","kind":"Log In"}`, 400},
		{"tok-bastion", `{"user":"alice","kind":"login"}`, 400},
		{"tok-bastion", `{"user":"alice","resource":"app","role":"read","kind":"login","extra":1}`, 400},
		{"tok-bastion", `not json`, 400},
		{"tok-alice", `{"user":"alice","resource":"app","role":"read","kind":"login"}`, 401},
	} {
		if code, body := postActivity(t, s, bad.token, bad.body); code != bad.status || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want %d", bad.body, code, body, bad.status)
		}
	}
	var after []lapse.AuditEvent
	s.cliJSON(t, "carol", &after, "audit")
	if len(after) != len(before) {
		t.Errorf("bad activity reports added %d audit records", len(after)-len(before))
	}

	// Alerts: admins list and acknowledge them.
	var alerts []lapse.Alert
	s.cliJSON(t, "carol", &alerts, "alerts", "--open")
	rules := map[string]lapse.Alert{}
	for _, a := range alerts {
		rules[a.Rule] = a
	}
	burst, outside := rules["request_burst"], rules["activity_outside_grant"]
	if burst.RequestID != second.ID || !burst.Revoke || outside.User != "alice" || outside.Severity != lapse.SeverityHigh {
		t.Fatalf("open alerts: %+v", alerts)
	}
	if out, code := s.cli(t, "alice", "alerts"); code == 0 || !strings.Contains(out, "only admins") {
		t.Fatalf("alice lists alerts: exit %d %s", code, out)
	}
	out, code := s.cli(t, "carol", "alerts", "ack", fmt.Sprint(outside.ID))
	if code != 0 || !strings.Contains(out, "acknowledged by carol") {
		t.Fatalf("ack: exit %d %s", code, out)
	}
	if out, code := s.cli(t, "carol", "alerts", "ack", fmt.Sprint(outside.ID)); code == 0 || !strings.Contains(out, "already acknowledged") {
		t.Fatalf("second ack: exit %d %s", code, out)
	}
	out, _ = s.cli(t, "carol", "alerts", "--open")
	if strings.Contains(out, "activity_outside_grant") || !strings.Contains(out, "request_burst") {
		t.Fatalf("open alerts after ack:\n%s", out)
	}

	// The collector has every record, in order.
	var all []lapse.AuditEvent
	s.cliJSON(t, "carol", &all, "audit")
	last := all[len(all)-1].Seq
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := col.got()
		if len(got) >= int(last) {
			for i, seq := range got[:last] {
				if seq != int64(i+1) {
					t.Fatalf("collector got %v, want 1..%d in order", got, last)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector has %d of %d records", len(got), last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metrics, []byte(`lapse_audit_export_backlog{sink="collector"}`)) || !bytes.Contains(metrics, []byte(`lapse_audit_export_errors_total{sink="collector"} 0`)) {
		t.Errorf("metrics lack the export series")
	}
	if strings.Contains(s.logs(), col.token) {
		t.Error("the collector's token is in the server log")
	}
}
