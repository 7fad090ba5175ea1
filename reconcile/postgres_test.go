package reconcile_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector/postgres"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
)

// TestPostgresOrphanIsDropped is the crash between provisioning and its
// commit: the role exists in PostgreSQL, and the store knows nothing of
// its grant. The sweep drops the role.
func TestPostgresOrphanIsDropped(t *testing.T) {
	srv := pgtest.Shared(t)
	db := srv.CreateDatabase(t)
	admin := srv.Admin(t, db)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := admin.Exec(ctx, `DO $$ BEGIN CREATE ROLE orders_read NOLOGIN;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`); err != nil {
		t.Fatal(err)
	}
	conn, err := postgres.New(postgres.Config{Name: "orders-pg", DSN: srv.AdminDSNFor(db), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	newGrant := func(user string) lapse.Grant {
		var id [16]byte
		_, _ = rand.Read(id[:])
		return lapse.Grant{
			ID: hex.EncodeToString(id[:]), User: user, Resource: "orders-db", Role: "read",
			ExpiresAt: time.Now().Add(time.Hour),
			Settings:  postgres.RoleSettings{Grant: []string{"orders_read"}},
		}
	}
	g := newGrant("mallory")
	p, err := conn.Provision(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	// A live session of the orphan ends with it.
	session, err := pgx.Connect(ctx, p.Credentials.Value)
	if err != nil {
		t.Fatalf("login as the orphan: %v", err)
	}
	defer session.Close(context.Background())

	sw, clock := newSweeper(t, map[string]lapse.Connector{"orders-pg": conn})
	// An active grant's role, next to the orphan, stays.
	active := request(t, newGrant("").ID, lapse.StateActive, clock.Now())
	kept, err := conn.Provision(ctx, lapse.Grant{ID: active.ID, User: active.User, ExpiresAt: active.ExpiresAt,
		Settings: postgres.RoleSettings{Grant: []string{"orders_read"}}})
	if err != nil {
		t.Fatal(err)
	}
	active.Ref = kept.Ref
	putRequest(t, sw.Store, active)
	// Roles are the cluster's, not the database's: leave none for the next
	// test on the shared server.
	defer func() {
		_ = conn.Revoke(context.Background(), lapse.Grant{ID: active.ID, Ref: kept.Ref})
	}()

	removed, err := sw.Sweep(ctx)
	if err != nil || removed != 1 {
		t.Fatalf("Sweep = %d, %v; want 1, nil", removed, err)
	}
	var roles, backends int
	if err := admin.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_roles WHERE rolname = $1),
		(SELECT count(*) FROM pg_stat_activity WHERE usename = $1)`, p.Ref).Scan(&roles, &backends); err != nil {
		t.Fatal(err)
	}
	if roles != 0 || backends != 0 {
		t.Errorf("role %s: %d in pg_roles, %d backends; want none", p.Ref, roles, backends)
	}
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_roles WHERE rolname = $1`, kept.Ref).Scan(&roles); err != nil || roles != 1 {
		t.Errorf("role %s of the active grant: %d in pg_roles (%v); want it kept", kept.Ref, roles, err)
	}
	if err := session.Ping(ctx); err == nil {
		t.Error("the orphan's session is still alive")
	}

	evs, data := orphanEvents(t, sw.Store)
	if len(evs) != 1 {
		t.Fatalf("%d orphan events, want 1", len(evs))
	}
	d := data[0]
	if evs[0].RequestID != g.ID || d.Ref != p.Ref || d.GrantID != g.ID || d.Receipt["pg_roles"] != "absent" || d.Receipt["role"] != p.Ref {
		t.Errorf("event = %+v, data = %+v", evs[0], d)
	}
	verifyChain(t, sw.Store)
}
