package main

import (
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/report"
)

// TestEndToEndAudit runs the audit commands through the built binary:
// query with filters and pages, export and verify offline, prove a
// record, produce and check evidence, the report; then deletes the newest
// record from the database file and expects verify to fail there.
func TestEndToEndAudit(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test skipped in -short mode")
	}
	dir := t.TempDir()
	cfg := writeConfig(t, dir)
	data := filepath.Join(dir, "data")
	s := startServer(t, "--config", cfg, "--data", data)
	run := func(user string, want int, args ...string) string {
		t.Helper()
		out, code := s.cli(t, user, args...)
		if code != want {
			t.Fatalf("lapse %s: exit %d, want %d\n%s", strings.Join(args, " "), code, want, out)
		}
		return out
	}

	var app, db, denied api.Request
	s.cliJSON(t, "alice", &app, "request", "app", "--role", "read", "--for", "30m", "--reason", "look <around> & see")
	s.cliJSON(t, "alice", &db, "request", "db", "--role", "admin", "--for", "30m", "--reason", "INC-42")
	run("bob", 0, "approve", db.ID, "--comment", "ok for INC-42")
	run("alice", 0, "release", db.ID)
	s.cliJSON(t, "alice", &denied, "request", "db", "--role", "admin", "--for", "30m", "--reason", "curious")
	run("bob", 0, "deny", denied.ID, "--reason", "no ticket")

	// Queries.
	var evs []lapse.AuditEvent
	s.cliJSON(t, "carol", &evs, "audit", "--user", "alice", "--type", lapse.EvRequested)
	if len(evs) != 3 {
		t.Fatalf("alice's requests: %d records", len(evs))
	}
	s.cliJSON(t, "carol", &evs, "audit", "--request", db.ID, "--until", "2099-01-01T00:00:00Z")
	if len(evs) < 4 || evs[0].Type != lapse.EvRequested {
		t.Fatalf("records of %s: %+v", db.ID, evs)
	}
	out := run("carol", 0, "audit", "--limit", "2")
	if !strings.Contains(out, "repeat with --after 2") {
		t.Fatalf("first page:\n%s", out)
	}
	var page api.AuditPage
	s.cliJSON(t, "carol", &page, "audit", "--limit", "2", "--after", "2")
	if len(page.Events) != 2 || page.Events[0].Seq != 3 || page.Next != 4 {
		t.Fatalf("second page: %+v", page)
	}

	// Pin the key, export, verify offline and through the server.
	key := strings.TrimSpace(run("alice", 0, "audit", "key"))
	keyFile := filepath.Join(dir, "audit.pub")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(dir, "audit.jsonl")
	if err := os.WriteFile(export, []byte(run("carol", 0, "audit", "export")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := s.cliNoServer(t, "audit", "verify", "--file", export, "--key", keyFile); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("offline verify: exit %d\n%s", code, out)
	}
	run("carol", 0, "audit", "verify")
	run("carol", 0, "audit", "verify", "--key", key)
	run("alice", 1, "audit", "verify")
	out = run("alice", 0, "audit", "proof", "2", "--key", keyFile)
	if !strings.Contains(out, "is in the log") {
		t.Fatalf("proof:\n%s", out)
	}

	// Evidence, and evidence tampered with.
	ev := filepath.Join(dir, "evidence.txt")
	run("alice", 0, "evidence", db.ID, "-o", ev)
	out, code := s.cliNoServer(t, "evidence", "verify", ev, "--key", keyFile)
	if code != 0 || !strings.Contains(out, "approved by bob") || !strings.Contains(out, "grant.provisioned") {
		t.Fatalf("evidence verify: exit %d\n%s", code, out)
	}
	b, _ := os.ReadFile(ev)
	if err := os.WriteFile(ev, []byte(strings.Replace(string(b), "INC-42", "INC-43", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := s.cliNoServer(t, "evidence", "verify", ev, "--key", keyFile); code != 1 {
		t.Fatalf("tampered evidence: exit %d\n%s", code, out)
	}

	// The report.
	var rep report.Report
	s.cliJSON(t, "carol", &rep, "report", "--since", "1h")
	if len(rep.Grants) != 2 || len(rep.Denied) != 1 || rep.Denied[0].Reason != "no ticket" || len(rep.Unused) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	rows, err := csv.NewReader(strings.NewReader(run("carol", 0, "report", "--since", "1h", "-o", "csv"))).ReadAll()
	if err != nil || len(rows) != 4 || rows[0][0] != "kind" {
		t.Fatalf("csv report: %v %v", rows, err)
	}
	if out := run("carol", 0, "report", "--since", "1h"); !strings.Contains(out, "NEVER USED (2)") || !strings.Contains(out, "INC-42") {
		t.Fatalf("report:\n%s", out)
	}
	run("alice", 1, "report", "--since", "1h")

	// Stop (the server signs a last checkpoint), delete the newest record
	// from the file, start again: verify names it.
	s.kill(syscall.SIGTERM)
	var size int64
	func() {
		db, err := sql.Open("sqlite", filepath.Join(data, "lapse.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.QueryRow("SELECT max(seq) FROM audit").Scan(&size); err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"DROP TRIGGER audit_no_delete", "DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)"} {
			if _, err := db.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
	}()
	s = startServer(t, "--config", cfg, "--data", data)
	out, code = s.cli(t, "carol", "audit", "verify")
	if code != 1 || !strings.Contains(out, "BROKEN") || !strings.Contains(out, "at record "+itoa(size)+":") {
		t.Fatalf("verify after deleting record %d: exit %d\n%s", size, code, out)
	}
	var v api.Verify
	out, _ = s.cli(t, "carol", "audit", "verify", "-o", "json")
	if err := jsonUnmarshal(out, &v); err != nil || v.OK || v.BadRecord != size {
		t.Fatalf("verify -o json: %+v %v\n%s", v, err, out)
	}
	if err := os.WriteFile(export, []byte(run("carol", 0, "audit", "export")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := s.cliNoServer(t, "audit", "verify", "--file", export, "--key", keyFile); code != 1 || !strings.Contains(out, "record "+itoa(size)) {
		t.Fatalf("offline verify after the deletion: exit %d\n%s", code, out)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
