package postgres_test

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector/postgres"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
)

func TestLoginSeesOnlyGrantedTables(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	g := newGrant("alice", time.Hour)
	g.Settings = postgres.RoleSettings{Grant: []string{readRole}, Notes: "orders only"}
	g, p := f.provision(t, g)

	if p.Credentials == nil || p.Credentials.Kind != "postgres_url" {
		t.Fatalf("credentials = %+v, want kind postgres_url", p.Credentials)
	}
	if !strings.HasPrefix(p.Credentials.Instructions, "psql '"+p.Credentials.Value+"'") ||
		!strings.Contains(p.Credentials.Instructions, "orders only") {
		t.Errorf("instructions = %q, want the psql command and the notes", p.Credentials.Instructions)
	}
	password := passwordOf(t, p.Credentials.Value)
	for k, v := range p.Details {
		if strings.Contains(v, password) {
			t.Errorf("details[%s] shows the password", k)
		}
	}
	if p.Ref != g.Ref || !strings.HasPrefix(p.Ref, "lapse_alice_") {
		t.Errorf("Ref = %q, want lapse_alice_...", p.Ref)
	}

	conn := mustLogin(t, p)
	var user string
	var n int
	if err := conn.QueryRow(ctxT(t), "SELECT current_user, (SELECT count(*) FROM orders)").Scan(&user, &n); err != nil {
		t.Fatalf("read orders: %v", err)
	}
	if user != p.Ref || n != 2 {
		t.Errorf("current_user, count = %q, %d; want %q, 2", user, n, p.Ref)
	}
	_, err := conn.Exec(ctxT(t), "SELECT * FROM payroll")
	if sqlState(err) != "42501" {
		t.Errorf("read payroll: err = %v, want insufficient_privilege (42501)", err)
	}
	_, err = conn.Exec(ctxT(t), "DELETE FROM orders")
	if sqlState(err) != "42501" {
		t.Errorf("delete orders: err = %v, want insufficient_privilege (42501)", err)
	}
}

func TestRevokeCutsOffRunningQuery(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	g, p := f.provision(t, newGrant("bob", time.Hour))
	conn := mustLogin(t, p)

	done := make(chan error, 1)
	go func() {
		_, err := conn.Exec(context.Background(), "SELECT pg_sleep(30)")
		done <- err
	}()
	// Wait until the query runs, watching it the way the monitor does.
	var sessions []postgres.Session
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		sessions, err = f.conn.Activity(ctxT(t), g)
		if err != nil {
			t.Fatal(err)
		}
		if len(sessions) == 1 && sessions[0].State == "active" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the query did not start; sessions: %+v", sessions)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s := sessions[0]
	if s.PID == 0 || s.Database != f.db || s.ClientAddr != "127.0.0.1" || !strings.Contains(s.Query, "pg_sleep(30)") ||
		s.BackendStart.IsZero() || s.QueryStart.Before(s.BackendStart) {
		t.Errorf("session = %+v", s)
	}

	start := time.Now()
	if err := f.conn.Revoke(ctxT(t), g); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("pg_sleep(30) finished without error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the running query was not cut off")
	}
	t.Logf("revoke with one running session took %s", time.Since(start))

	if _, err := f.conn.VerifyGone(ctxT(t), g); err != nil {
		t.Errorf("VerifyGone: %v", err)
	}
	if c, err := login(ctxT(t), p); err == nil {
		c.Close(context.Background())
		t.Error("login works after Revoke")
	}
	if sessions, err := f.conn.Activity(ctxT(t), g); err != nil || len(sessions) != 0 {
		t.Errorf("Activity after Revoke = %v, %v; want none", sessions, err)
	}
}

func TestLoginFailsAfterValidUntil(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for an expiry")
	}
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	g := newGrant("carol", 1500*time.Millisecond)
	_, p := f.provision(t, g)

	c, err := login(ctxT(t), p)
	if err != nil {
		t.Fatalf("login within the window: %v", err)
	}
	c.Close(context.Background())

	time.Sleep(time.Until(g.ExpiresAt) + 100*time.Millisecond)
	c, err = login(ctxT(t), p)
	if err == nil {
		c.Close(context.Background())
		t.Fatal("login works after VALID UNTIL")
	}
	if sqlState(err) != "28P01" {
		t.Errorf("login after expiry: err = %v, want invalid_password (28P01)", err)
	}
}

func TestRevokeIsIdempotent(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	g, _ := f.provision(t, newGrant("dave", time.Hour))
	for i := range 2 {
		if err := f.conn.Revoke(ctxT(t), g); err != nil {
			t.Fatalf("Revoke #%d: %v", i+1, err)
		}
	}
	if n := f.roleCount(t, g.Ref); n != 0 {
		t.Errorf("%d roles %s left", n, g.Ref)
	}

	never := newGrant("dave", time.Hour)
	if err := f.conn.Revoke(ctxT(t), never); err != nil {
		t.Errorf("Revoke of a grant never provisioned: %v", err)
	}
	if _, err := f.conn.VerifyGone(ctxT(t), never); err != nil {
		t.Errorf("VerifyGone of a grant never provisioned: %v", err)
	}
}

func TestProvisionTwiceLeavesOneRole(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	f.exec(t, `DO $$ BEGIN CREATE ROLE orders_write NOLOGIN;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`)
	g := newGrant("erin", time.Hour)
	_, first := f.provision(t, g)

	// The second attempt comes with other settings: its memberships win.
	limit := 3
	g.Settings = postgres.RoleSettings{Grant: []string{"orders_write"}, ConnectionLimit: &limit}
	g.ExpiresAt = g.ExpiresAt.Add(time.Hour)
	_, second := f.provision(t, g)

	if first.Ref != second.Ref {
		t.Fatalf("Refs differ: %q, %q", first.Ref, second.Ref)
	}
	if n := f.roleCount(t, second.Ref); n != 1 {
		t.Fatalf("%d roles named %s, want 1", n, second.Ref)
	}
	if second.Details["created"] != "false" {
		t.Errorf("details = %v, want created=false", second.Details)
	}
	if c, err := login(ctxT(t), first); err == nil {
		c.Close(context.Background())
		t.Error("the first password still works")
	}
	mustLogin(t, second)

	var member []string
	var connLimit int
	err := f.admin.QueryRow(ctxT(t), `
SELECT ARRAY(SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid),
       r.rolconnlimit
FROM pg_roles r WHERE r.rolname = $1`, second.Ref).Scan(&member, &connLimit)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(member, []string{"orders_write"}) || connLimit != 3 {
		t.Errorf("member of %v with connection limit %d; want [orders_write] and 3", member, connLimit)
	}
}

func TestVerifyGone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	g, p := f.provision(t, newGrant("frank", time.Hour))
	mustLogin(t, p)

	if receipt, err := f.conn.VerifyGone(ctxT(t), g); err == nil {
		t.Fatalf("VerifyGone succeeded while the role exists: %v", receipt)
	}
	if err := f.conn.Revoke(ctxT(t), g); err != nil {
		t.Fatal(err)
	}
	receipt, err := f.conn.VerifyGone(ctxT(t), g)
	if err != nil {
		t.Fatalf("VerifyGone after Revoke: %v", err)
	}
	if receipt["role"] != g.Ref || receipt["pg_roles"] != "absent" || receipt["backends"] != "0" {
		t.Errorf("receipt = %v", receipt)
	}
	if at, err := time.Parse(time.RFC3339Nano, receipt["checked_at"]); err != nil || time.Since(at) > time.Minute {
		t.Errorf("checked_at = %q (%v), want a recent time", receipt["checked_at"], err)
	}
}

func TestListFindsGrantRoles(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	a, _ := f.provision(t, newGrant("gina", time.Hour))
	b, _ := f.provision(t, newGrant("hank", time.Hour))
	// Named like ours but not created by the connector: never listed.
	f.exec(t, `DO $$ BEGIN CREATE ROLE lapse_manual_role;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`)

	got, err := f.conn.List(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []lapse.Grant{a, b} {
		if !slices.Contains(got, lapse.Existing{Ref: g.Ref, GrantID: g.ID}) {
			t.Errorf("List misses %s of grant %s: %v", g.Ref, g.ID, got)
		}
	}
	for _, e := range got {
		if e.Ref == "lapse_manual_role" {
			t.Error("List shows a role the connector did not create")
		}
	}

	if err := f.conn.Revoke(ctxT(t), a); err != nil {
		t.Fatal(err)
	}
	got, err = f.conn.List(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(got, func(e lapse.Existing) bool { return e.Ref == a.Ref }) {
		t.Errorf("List still shows revoked %s", a.Ref)
	}
}

func TestExtendMovesValidUntil(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	g, p := f.provision(t, newGrant("ivan", time.Hour))
	validUntil := func() time.Time {
		t.Helper()
		var at time.Time
		if err := f.admin.QueryRow(ctxT(t), `SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1`, g.Ref).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	if got, want := validUntil(), g.ExpiresAt.Truncate(time.Microsecond); !got.Equal(want) {
		t.Errorf("rolvaliduntil = %s, want %s", got, want)
	}

	g.ExpiresAt = g.ExpiresAt.Add(90 * time.Minute)
	creds, err := f.conn.Extend(ctxT(t), g)
	if err != nil || creds != nil {
		t.Fatalf("Extend = %v, %v; want nil, nil", creds, err)
	}
	if got, want := validUntil(), g.ExpiresAt.Truncate(time.Microsecond); !got.Equal(want) {
		t.Errorf("after Extend rolvaliduntil = %s, want %s", got, want)
	}
	mustLogin(t, p)

	gone := newGrant("ivan", time.Hour)
	_, err = f.conn.Extend(ctxT(t), gone)
	if !errors.Is(err, lapse.ErrNotFound) || !lapse.IsUnrecoverable(err) {
		t.Errorf("Extend of a missing role: err = %v, want unrecoverable not found", err)
	}
}

func TestOddUserNameIsHarmless(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	f.exec(t, "CREATE TABLE x (n int)")
	const user = `o'brien"; drop table x;--`
	g, p := f.provision(t, newGrant(user, time.Hour))
	if !strings.HasPrefix(g.Ref, "lapse_o_brien_drop_table_x_") {
		t.Errorf("Ref = %q", g.Ref)
	}
	mustLogin(t, p)
	if err := f.conn.Revoke(ctxT(t), g); err != nil {
		t.Fatal(err)
	}
	var exists bool
	if err := f.admin.QueryRow(ctxT(t), "SELECT to_regclass('x') IS NOT NULL").Scan(&exists); err != nil || !exists {
		t.Errorf("table x exists = %v (%v), want true", exists, err)
	}
}

func TestGrantIDWithQuotes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	g := newGrant("judy", time.Hour)
	g.ID = `a1b2c3d4'); DROP TABLE orders; -- \' é`
	g, _ = f.provision(t, g)
	got, err := f.conn.List(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, lapse.Existing{Ref: g.Ref, GrantID: g.ID}) {
		t.Errorf("List does not map %s back to grant %q: %v", g.Ref, g.ID, got)
	}
	if err := f.conn.Revoke(ctxT(t), g); err != nil {
		t.Fatal(err)
	}
	if n := f.roleCount(t, g.Ref); n != 0 {
		t.Errorf("role %s left", g.Ref)
	}
}

func TestUnknownGrantedRoleIsUnrecoverable(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	g := newGrant("kate", time.Hour)
	g.Settings = postgres.RoleSettings{Grant: []string{readRole, "no_such_role"}}
	_, err := f.conn.Provision(ctxT(t), g)
	if !lapse.IsUnrecoverable(err) || !errors.Is(err, lapse.ErrNotFound) || !strings.Contains(err.Error(), "no_such_role") {
		t.Fatalf("err = %v, want an unrecoverable not-found error naming no_such_role", err)
	}
	name, _ := postgres.RoleName(g.User, g.ID)
	if n := f.roleCount(t, name); n != 0 {
		t.Errorf("a failed Provision left role %s", name)
	}
}

func TestRoleOfOtherGrantIsLeftAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	a, _ := f.provision(t, newGrant("leo", time.Hour))
	// Another grant whose id starts like a's gets the same role name.
	b := newGrant("leo", time.Hour)
	b.ID = a.ID[:8] + "ffffffff"

	_, err := f.conn.Provision(ctxT(t), b)
	if !lapse.IsUnrecoverable(err) || !errors.Is(err, lapse.ErrConflict) {
		t.Errorf("Provision over another grant's role: err = %v, want unrecoverable conflict", err)
	}
	if err := f.conn.Revoke(ctxT(t), b); err != nil {
		t.Errorf("Revoke: %v", err)
	}
	if _, err := f.conn.VerifyGone(ctxT(t), b); err != nil {
		t.Errorf("VerifyGone: %v", err)
	}
	if n := f.roleCount(t, a.Ref); n != 1 {
		t.Errorf("the other grant's role was dropped")
	}
}

func TestRevokeReassignsOwnedObjects(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	f.exec(t, `CREATE SCHEMA scratch; GRANT USAGE, CREATE ON SCHEMA scratch TO orders_read`)
	g, p := f.provision(t, newGrant("mia", time.Hour))
	conn := mustLogin(t, p)
	if _, err := conn.Exec(ctxT(t), "CREATE TABLE scratch.notes (n int); INSERT INTO scratch.notes VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	if err := f.conn.Revoke(ctxT(t), g); err != nil {
		t.Fatalf("Revoke of a role that owns a table: %v", err)
	}
	var owner string
	var n int
	err := f.admin.QueryRow(ctxT(t), `SELECT tableowner, (SELECT n FROM scratch.notes) FROM pg_tables WHERE schemaname = 'scratch' AND tablename = 'notes'`).Scan(&owner, &n)
	if err != nil || owner != f.srv.User || n != 7 {
		t.Errorf("scratch.notes owner, n = %q, %d (%v); want %q, 7", owner, n, err, f.srv.User)
	}
}

func TestConnectionLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	g := newGrant("nina", time.Hour)
	limit := 1
	g.Settings = postgres.RoleSettings{Grant: []string{readRole}, ConnectionLimit: &limit}
	_, p := f.provision(t, g)
	mustLogin(t, p)
	c, err := login(ctxT(t), p)
	if err == nil {
		c.Close(context.Background())
		t.Fatal("a second session got past connection_limit 1")
	}
	if sqlState(err) != "53300" {
		t.Errorf("second login: err = %v, want too_many_connections (53300)", err)
	}
}

func TestAdminConnectionsAreBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	c := f.connector(t, postgres.Config{MaxConns: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			g := newGrant("ozzy", time.Hour)
			p, err := c.Provision(ctxT(t), g)
			if err == nil && i%2 == 0 {
				g.Ref = p.Ref
				err = c.Revoke(ctxT(t), g)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	var n int
	if err := f.admin.QueryRow(ctxT(t), `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'lapse'`, f.db).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n > 2 {
		t.Errorf("%d admin connections, want at most 2", n)
	}
}

func TestTargetOutage(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	f := newFixture(t, srv)
	g, _ := f.provision(t, newGrant("pat", time.Hour))
	if err := f.conn.Ping(ctxT(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}

	srv.Stop(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := f.conn.Provision(ctx, newGrant("pat", time.Hour))
	if err == nil {
		t.Fatal("Provision succeeded with the target down")
	}
	if lapse.IsUnrecoverable(err) {
		t.Errorf("Provision error is marked unrecoverable: %v", err)
	}
	t.Logf("Provision while down failed after %s: %v", time.Since(start), err)
	assertNoSecret(t, err, srv.Password)
	err = f.conn.Revoke(ctx, g)
	if err == nil {
		t.Fatal("Revoke succeeded with the target down")
	}
	assertNoSecret(t, err, srv.Password)
	if err := f.conn.Ping(ctx); err == nil {
		t.Error("Ping succeeded with the target down")
	}

	srv.Start(t)
	// The pool's connections died with the server; the first call after
	// the restart must not fail on them.
	if err := f.conn.Revoke(ctxT(t), g); err != nil {
		t.Fatalf("Revoke after restart: %v", err)
	}
	if _, err := f.conn.VerifyGone(ctxT(t), g); err != nil {
		t.Errorf("VerifyGone after restart: %v", err)
	}
}

func TestRestartBetweenCalls(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	f := newFixture(t, srv)
	// Fill the pool, then restart the server under it.
	for range 3 {
		f.provision(t, newGrant("quinn", time.Hour))
	}
	srv.Stop(t)
	srv.Start(t)
	g, p := f.provision(t, newGrant("quinn", time.Hour))
	mustLogin(t, p)
	if err := f.conn.Revoke(ctxT(t), g); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsDoNotShowTheAdminPassword(t *testing.T) {
	t.Parallel()
	const secret = "S3cret-pa55word"
	dsns := []string{
		"postgres://admin:" + secret + "@127.0.0.1:1/orders?sslmode=disable&connect_timeout=2",
		"host=127.0.0.1 port=1 user=admin password=" + secret + " dbname=orders sslmode=disable connect_timeout=2",
	}
	for _, dsn := range dsns {
		c, err := postgres.New(postgres.Config{Name: "down", DSN: dsn, Timeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		g := newGrant("rex", time.Hour)
		_, err = c.Provision(t.Context(), g)
		if err == nil {
			t.Fatal("Provision succeeded against a closed port")
		}
		assertNoSecret(t, err, secret)
		err = c.Ping(t.Context())
		assertNoSecret(t, err, secret)
		err = c.Revoke(t.Context(), g)
		assertNoSecret(t, err, secret)
	}

	// A DSN that cannot be parsed is not quoted back.
	_, err := postgres.New(postgres.Config{Name: "bad", DSN: "postgres://admin:" + secret + "@127.0.0.1:notaport/db"})
	if err == nil || !errors.Is(err, lapse.ErrInvalid) {
		t.Fatalf("New with a malformed DSN: err = %v, want invalid", err)
	}
	assertNoSecret(t, err, secret)
}

func TestWrongAdminPassword(t *testing.T) {
	t.Parallel()
	srv := pgtest.Shared(t)
	const secret = "not-the-Password-42"
	c, err := postgres.New(postgres.Config{Name: "wrong", DSN: srv.DSN(srv.User, secret, srv.Database)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	err = c.Ping(ctxT(t))
	if err == nil {
		t.Fatal("Ping with a wrong password succeeded")
	}
	assertNoSecret(t, err, secret)
}

func TestBadGrantsAreUnrecoverable(t *testing.T) {
	t.Parallel()
	c, err := postgres.New(postgres.Config{Name: "x", DSN: "postgres://u:p@127.0.0.1:1/db"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ok := newGrant("sam", time.Hour)
	tests := []struct {
		name string
		edit func(*lapse.Grant)
	}{
		{"no id", func(g *lapse.Grant) { g.ID = "" }},
		{"no user", func(g *lapse.Grant) { g.User = "" }},
		{"no expiry", func(g *lapse.Grant) { g.ExpiresAt = time.Time{} }},
		{"no settings", func(g *lapse.Grant) { g.Settings = nil }},
		{"empty grant list", func(g *lapse.Grant) { g.Settings = postgres.RoleSettings{} }},
		{"NUL in id", func(g *lapse.Grant) { g.ID = "abc\x00def" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := ok
			tt.edit(&g)
			_, err := c.Provision(t.Context(), g)
			if !lapse.IsUnrecoverable(err) || !errors.Is(err, lapse.ErrInvalid) {
				t.Errorf("err = %v, want unrecoverable invalid", err)
			}
		})
	}
	// A Ref that is not one of ours is never acted on.
	g := ok
	g.Ref = "postgres"
	if err := c.Revoke(t.Context(), g); !lapse.IsUnrecoverable(err) || !errors.Is(err, lapse.ErrInvalid) {
		t.Errorf("Revoke of ref %q: err = %v, want unrecoverable invalid", g.Ref, err)
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	c, err := postgres.New(postgres.Config{Name: "x", DSN: "postgres://u:p@127.0.0.1:1/db"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(t.Context()); err == nil {
		t.Error("Ping after Close succeeded")
	}
}

// passwordOf returns the password in a postgres:// URL.
func passwordOf(t testing.TB, rawURL string) string {
	t.Helper()
	_, rest, _ := strings.Cut(rawURL, "://")
	userinfo, _, _ := strings.Cut(rest, "@")
	_, pw, ok := strings.Cut(userinfo, ":")
	if !ok || len(pw) < 40 {
		t.Fatalf("no password of at least 40 characters in the URL")
	}
	return pw
}

// TestPsqlLogin logs in with psql (libpq) as the instructions say, with
// verifiers of the default and of the usual iteration count.
func TestPsqlLogin(t *testing.T) {
	t.Parallel()
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql not found")
	}
	f := newFixture(t, pgtest.Shared(t))
	for _, iterations := range []int{0, 4096} {
		c := f.connector(t, postgres.Config{SCRAMIterations: iterations})
		g := newGrant("uma", time.Hour)
		p, err := c.Provision(ctxT(t), g)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.CommandContext(ctxT(t), psql, p.Credentials.Value, "-Atc", "SELECT current_user, count(*) FROM orders").CombinedOutput()
		if err != nil {
			t.Fatalf("psql with %d iterations: %v\n%s", iterations, err, out)
		}
		if got, want := strings.TrimSpace(string(out)), p.Ref+"|2"; got != want {
			t.Errorf("psql printed %q, want %q", got, want)
		}
	}
}
