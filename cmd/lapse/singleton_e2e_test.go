package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	sshc "github.com/lapse-access/lapse/connector/ssh"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
)

// getAs fetches url with a bearer token and returns the status and body.
func getAs(t *testing.T, url, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// holds reports whether replica s holds the named lease, by its metrics.
func holds(t *testing.T, s *server, lease string) bool {
	t.Helper()
	code, b := getAs(t, s.url+"/metrics", "")
	return code == http.StatusOK && bytes.Contains(b, []byte(`lapse_lease_held{lease="`+lease+`"} 1`))
}

// holders returns the replicas among rs that hold the named lease.
func holders(t *testing.T, rs []*server, lease string) []*server {
	t.Helper()
	var out []*server
	for _, s := range rs {
		if holds(t, s, lease) {
			out = append(out, s)
		}
	}
	return out
}

// waitHolder waits until exactly one of rs holds the lease and returns it.
func waitHolder(t *testing.T, rs []*server, lease string, within time.Duration) *server {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		h := holders(t, rs, lease)
		if len(h) == 1 {
			return h[0]
		}
		if len(h) > 1 {
			t.Fatalf("%d replicas hold the lease %s at once", len(h), lease)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica holds the lease %s after %s", lease, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReplicasSingletons runs three replicas on one PostgreSQL with an
// audit sink and an ssh connector: each singleton task runs on exactly one
// replica; when the sink's holder is killed another takes the export over
// within the lease time and the collector receives every record, repeated
// only around the takeover; an ssh certificate revoked through one
// replica is in the KRL every other replica serves.
func TestReplicasSingletons(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL end-to-end test skipped in -short mode")
	}
	col := &seqCollector{token: "collector-s3cret-0123456789"}
	hs := httptest.NewServer(col)
	defer hs.Close()
	pg := pgtest.Start(t)
	dir := t.TempDir()
	base, err := os.ReadFile(writeConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	const leaseTime = 2 * time.Second
	cfg := strings.Replace(string(base), "server:\n", "server:\n  lease_duration: 2s\n  reconcile_interval: 1s\n", 1)
	cfg = strings.Replace(cfg, "connectors:\n", "connectors:\n  - name: ssh-ca\n    type: ssh\n", 1)
	cfg += fmt.Sprintf(`  - name: web
    connector: ssh-ca
    roles:
      - name: deploy
        principals: [deploy]
        max_duration: 1h
        approvals: 0
        requesters: [engineering]
audit:
  sinks:
    - name: collector
      type: http
      url: %s/ingest
      token_env: COLLECTOR_TOKEN
      batch: 20
`, hs.URL)
	cfgPath := filepath.Join(dir, "lapse-replicas.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	rs := startReplicasWith(t, pg, 3, dir, cfgPath, []string{"COLLECTOR_TOKEN=" + col.token})

	// Each singleton runs on one replica, and stays there.
	leases := []string{"sink/collector", "reconcile", "activity-sampler", "audit-checkpoints"}
	for _, l := range leases {
		waitHolder(t, rs, l, 10*time.Second)
	}
	request := func(s *server, n int) {
		for i := range n {
			var r api.Request
			s.cliJSON(t, "alice", &r, "request", "app", "--role", "read", "--for", "1h", "--reason", fmt.Sprintf("INC-%d", i))
		}
	}
	for _, s := range rs {
		request(s, 5)
	}
	time.Sleep(leaseTime)
	for _, l := range leases {
		if h := holders(t, rs, l); len(h) != 1 {
			t.Fatalf("after a lease time, %d replicas hold %s", len(h), l)
		}
	}

	// The sink's holder dies without releasing its lease.
	holder := waitHolder(t, rs, "sink/collector", time.Second)
	var rest []*server
	for _, s := range rs {
		if s != holder {
			rest = append(rest, s)
		}
	}
	killed := time.Now()
	holder.kill(syscall.SIGKILL)
	request(rest[0], 10)
	next := waitHolder(t, rest, "sink/collector", 3*leaseTime)
	t.Logf("sink export taken over after %s (lease %s)", time.Since(killed).Round(time.Millisecond), leaseTime)
	request(next, 10)

	// Every record reaches the collector; only a batch around the
	// takeover may come twice.
	var v api.Verify
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, b := getAs(t, rest[0].url+"/v1/audit/verify", "tok-carol")
		if code != http.StatusOK || json.Unmarshal(b, &v) != nil || !v.OK {
			t.Fatalf("audit verify: %d %s", code, b)
		}
		seen := map[int64]int{}
		for _, s := range col.got() {
			seen[s]++
		}
		missing := 0
		for seq := int64(1); seq <= v.Records; seq++ {
			if seen[seq] == 0 {
				missing++
			}
		}
		if missing == 0 {
			dups := 0
			for _, n := range seen {
				dups += n - 1
			}
			if dups > 20 {
				t.Errorf("the collector received %d records twice or more; at most one batch (20) may be repeated", dups)
			}
			t.Logf("collector received all %d records, %d repeated", v.Records, dups)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector is missing %d of %d records", missing, v.Records)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A certificate revoked through one replica is in the KRL of the other.
	a, b := rest[0], rest[1]
	var g api.Request
	a.cliJSON(t, "alice", &g, "request", "web", "--role", "deploy", "--for", "1h", "--reason", "INC-ssh")
	if g.State != lapse.StateActive {
		t.Fatalf("ssh request: %+v", g)
	}
	if out, code := a.cli(t, "carol", "revoke", g.ID, "--reason", "offboarded"); code != 0 {
		t.Fatalf("revoke on replica a: exit %d: %s", code, out)
	}
	waitState(t, b, g.ID, lapse.StateEnded, 10*time.Second)
	serial := binary.BigEndian.AppendUint64(nil, sshc.Serial(g.ID))
	code, krl := getAs(t, b.url+"/v1/ssh/krl", "tok-carol")
	if code != http.StatusOK || !bytes.HasPrefix(krl, []byte("SSHKRL\n\x00")) {
		t.Fatalf("replica b's KRL: %d %q", code, krl[:min(len(krl), 16)])
	}
	if !bytes.Contains(krl, serial) {
		t.Errorf("the certificate revoked through replica a is not in the KRL replica b serves")
	}
}
