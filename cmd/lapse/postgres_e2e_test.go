package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/client"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
)

// pgSetup starts a PostgreSQL with an orders table readable by orders_read
// and a secrets table that it is not, and writes a config with a postgres
// resource on it.
func pgSetup(t *testing.T) (*pgtest.Server, string) {
	t.Helper()
	pg := pgtest.Start(t)
	admin := pg.Admin(t, pg.Database)
	for _, q := range []string{
		`CREATE TABLE orders (id int PRIMARY KEY, item text)`,
		`INSERT INTO orders VALUES (1, 'book')`,
		`CREATE TABLE secrets (v text)`,
		`CREATE ROLE orders_read NOLOGIN`,
		`GRANT SELECT ON orders TO orders_read`,
	} {
		if _, err := admin.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	dir := t.TempDir()
	base, err := os.ReadFile(writeConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(base), "server:\n", "server:\n  activity_interval: 500ms\n  reconcile_interval: 2s\n", 1)
	cfg = strings.Replace(cfg, "connectors:\n", `connectors:
  - name: orders-pg
    type: postgres
    dsn_env: ORDERS_PG_ADMIN_DSN
`, 1) + `  - name: orders-db
    connector: orders-pg
    environment: prod
    roles:
      - name: read
        max_duration: 1h
        approvals: 0
        requesters: [engineering]
        grant: [orders_read]
        connection_limit: 3
        notes: read-only replica of orders
`
	path := filepath.Join(dir, "lapse-pg.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return pg, path
}

func roleExists(t *testing.T, pg *pgtest.Server, name string) bool {
	t.Helper()
	var n int
	admin := pg.Admin(t, pg.Database)
	if err := admin.QueryRow(context.Background(), `SELECT count(*) FROM pg_roles WHERE rolname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func waitState(t *testing.T, s *server, id string, want lapse.State, within time.Duration) api.Request {
	t.Helper()
	deadline := time.Now().Add(within)
	var r api.Request
	for {
		s.cliJSON(t, "carol", &r, "show", id)
		if r.State == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s is %s after %s, want %s (last error %q)\n%s", id, r.State, within, want, r.LastError, s.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestPostgresGrantEndsOnTime(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL end-to-end test skipped in -short mode")
	}
	pg, cfg := pgSetup(t)
	s := startServerEnv(t, []string{"ORDERS_PG_ADMIN_DSN=" + pg.AdminDSN()}, "--config", cfg, "--data", filepath.Join(t.TempDir(), "data"))

	var r api.Request
	s.cliJSON(t, "alice", &r, "request", "orders-db", "--role", "read", "--for", "6s", "--reason", "INC-7")
	if r.State != lapse.StateActive || r.Credentials == nil || r.Credentials.Kind != "postgres_url" {
		t.Fatalf("request: %+v", r)
	}
	if !strings.Contains(r.Credentials.Instructions, "read-only replica of orders") {
		t.Errorf("instructions lack the role's notes: %q", r.Credentials.Instructions)
	}
	// The password is handed out once and appears nowhere else.
	u, err := pgx.ParseConfig(r.Credentials.Value)
	if err != nil {
		t.Fatal(err)
	}
	for _, where := range []string{s.logs()} {
		if strings.Contains(where, u.Password) || strings.Contains(where, pg.Password) {
			t.Fatal("a password reached the server log")
		}
	}
	var evs []lapse.AuditEvent
	s.cliJSON(t, "carol", &evs, "audit", "--request", r.ID)
	for _, e := range evs {
		if strings.Contains(string(e.Data), u.Password) {
			t.Fatal("the issued password reached the audit log")
		}
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, r.Credentials.Value)
	if err != nil {
		t.Fatalf("login with the handed URL: %v", err)
	}
	defer conn.Close(ctx)
	var item string
	if err := conn.QueryRow(ctx, `SELECT item FROM orders WHERE id = 1`).Scan(&item); err != nil || item != "book" {
		t.Fatalf("read orders: %q %v", item, err)
	}
	if _, err := conn.Exec(ctx, `SELECT * FROM secrets`); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("read secrets: %v, want permission denied", err)
	}
	// The session is sampled into the grant's activity.
	for deadline := time.Now().Add(5 * time.Second); ; {
		out, _ := s.cli(t, "alice", "show", r.ID)
		if strings.Contains(out, "Activity:") && strings.Contains(out, "session") && strings.Contains(out, "database=") {
			break
		}
		if time.Now().After(deadline) {
			aud, _ := s.cli(t, "alice", "audit", "--request", r.ID, "--type", lapse.EvActivity)
			t.Fatalf("no activity in show:\n%s\n%s\n%s", out, aud, s.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A query still running at expiry is cut off.
	cut := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, `SELECT pg_sleep(60)`)
		cut <- err
	}()
	select {
	case err := <-cut:
		if err == nil {
			t.Fatal("the live session survived the expiry")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the live session was not cut off at expiry")
	}
	ended := waitState(t, s, r.ID, lapse.StateEnded, 10*time.Second)
	if ended.EndReason != lapse.EndExpired {
		t.Fatalf("end reason %s", ended.EndReason)
	}
	if roleExists(t, pg, ended.Ref) {
		t.Fatalf("role %s still exists", ended.Ref)
	}
	if c, err := pgx.Connect(ctx, r.Credentials.Value); err == nil {
		c.Close(ctx)
		t.Fatal("login works after the window")
	}
	s.cliJSON(t, "carol", &evs, "audit", "--request", r.ID, "--type", lapse.EvEnded)
	var data struct {
		Receipt map[string]string `json:"receipt"`
	}
	if len(evs) != 1 || json.Unmarshal(evs[0].Data, &data) != nil || data.Receipt["pg_roles"] != "absent" || data.Receipt["backends"] != "0" {
		t.Fatalf("revocation receipt: %d events, %s", len(evs), evs[0].Data)
	}
}

func TestPostgresOutageAcrossExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL outage test skipped in -short mode")
	}
	pg, cfg := pgSetup(t)
	s := startServerEnv(t, []string{"ORDERS_PG_ADMIN_DSN=" + pg.AdminDSN()}, "--config", cfg, "--data", filepath.Join(t.TempDir(), "data"))
	var ids []string
	var refs []string
	for i := range 5 {
		var r api.Request
		s.cliJSON(t, "alice", &r, "request", "orders-db", "--role", "read", "--for", fmt.Sprintf("%ds", 2+i%2), "--reason", "outage")
		if r.State != lapse.StateActive {
			t.Fatalf("request: %+v", r)
		}
		ids, refs = append(ids, r.ID), append(refs, r.Ref)
	}
	pg.Stop(t)
	time.Sleep(8 * time.Second) // past every expiry, several failed attempts
	var r api.Request
	s.cliJSON(t, "carol", &r, "show", ids[0])
	if r.State != lapse.StateRevoking || r.LastError == "" {
		t.Fatalf("during the outage: %s %q", r.State, r.LastError)
	}
	if strings.Contains(r.LastError, pg.Password) {
		t.Fatal("the admin password reached an error")
	}
	out, _ := s.cli(t, "carol", "ls")
	if !strings.Contains(out, "not confirmed") {
		t.Errorf("ls does not show the unconfirmed revocations:\n%s", out)
	}
	pg.Start(t)
	back := time.Now()
	for _, id := range ids {
		waitState(t, s, id, lapse.StateEnded, 10*time.Second)
	}
	// The promise is 2 s (docs/benchmarks.md has the measured figure); the
	// bound leaves room for a loaded CI machine.
	if took := time.Since(back); took > 5*time.Second {
		t.Errorf("roles were gone %s after PostgreSQL came back, want within 2s (5s allowed under load)", took)
	}
	for _, ref := range refs {
		if roleExists(t, pg, ref) {
			t.Fatalf("role %s still exists", ref)
		}
	}
	s.kill(syscall.SIGTERM)
}

// TestPostgresCrashDuringProvisioning kills Lapse with SIGKILL while
// requests are being provisioned; after the restart, every lapse_ role in
// PostgreSQL belongs to an active grant and every active grant has its role.
func TestPostgresCrashDuringProvisioning(t *testing.T) {
	if testing.Short() {
		t.Skip("PostgreSQL crash test skipped in -short mode")
	}
	pg, cfg := pgSetup(t)
	env := []string{"ORDERS_PG_ADMIN_DSN=" + pg.AdminDSN()}
	data := filepath.Join(t.TempDir(), "data")
	s := startServerEnv(t, env, "--config", cfg, "--data", data)
	alice := client.New(s.url, "tok-alice")
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			_, _ = alice.Submit(context.Background(), api.SubmitRequest{Resource: "orders-db", Role: "read", Duration: "1h", Reason: "crash"})
		})
	}
	time.Sleep(100 * time.Millisecond)
	s.kill(syscall.SIGKILL)
	wg.Wait()

	s = startServerEnv(t, env, "--config", cfg, "--data", data)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var rs []api.Request
		s.cliJSON(t, "carol", &rs, "ls", "--state", "all")
		settled := true
		active := map[string]bool{}
		for _, r := range rs {
			switch r.State {
			case lapse.StateActive:
				active[r.Ref] = true
			case lapse.StateApproved, lapse.StateRevoking, lapse.StatePending:
				settled = false
			}
		}
		if settled {
			admin := pg.Admin(t, pg.Database)
			rows, err := admin.Query(context.Background(), `SELECT rolname FROM pg_roles WHERE rolname LIKE 'lapse\_%'`)
			if err != nil {
				t.Fatal(err)
			}
			roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			for _, role := range roles {
				if !active[role] {
					t.Errorf("role %s has no active grant", role)
				}
			}
			if len(roles) != len(active) {
				t.Errorf("%d roles for %d active grants", len(roles), len(active))
			}
			t.Logf("%d requests stored before the crash, %d active after the restart", len(rs), len(active))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("requests did not settle after the restart\n%s", s.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
