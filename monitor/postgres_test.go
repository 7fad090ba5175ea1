package monitor_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector/postgres"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
	"github.com/lapse-access/lapse/monitor"
)

// TestPostgresSessionIsRecorded provisions a grant on a real PostgreSQL,
// logs in with the handed URL, and checks that the session lands in the
// audit log once, tied to the grant.
func TestPostgresSessionIsRecorded(t *testing.T) {
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
	settings := postgres.RoleSettings{Grant: []string{"orders_read"}}
	target := func(resource, role string) (lapse.Connector, any, error) { return conn, settings, nil }

	var id [16]byte
	_, _ = rand.Read(id[:])
	now := time.Now().UTC()
	p, err := conn.Provision(ctx, lapse.Grant{
		ID: hex.EncodeToString(id[:]), User: "alice", Resource: "orders-db", Role: "read",
		ExpiresAt: now.Add(time.Hour), Settings: settings,
	})
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	r := activeRequest(t, st, hex.EncodeToString(id[:]), "alice", "orders-db", p.Ref, now)

	cfg, err := pgx.ParseConfig(p.Credentials.Value)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = "nightly-report"
	session, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("login with the handed URL: %v", err)
	}
	defer session.Close(context.Background())
	var pid int
	if err := session.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}

	s := &monitor.Sampler{Store: st, Target: target, Logger: slog.New(slog.DiscardHandler)}
	if n, err := s.SampleOnce(ctx); err != nil || n != 1 {
		t.Fatalf("SampleOnce = %d, %v; want 1, nil", n, err)
	}
	evs, acts := activityEvents(t, st, r.ID)
	if len(evs) != 1 {
		t.Fatalf("%d activity events, want 1", len(evs))
	}
	ev, a := evs[0], acts[0]
	if ev.User != "alice" || ev.Resource != "orders-db" || ev.Role != "read" {
		t.Errorf("event = %+v, want alice's grant of read on orders-db", ev)
	}
	if a.Kind != "session" || !strings.HasPrefix(a.Key, "pid ") || !strings.Contains(a.Key, " since ") ||
		a.Details["application_name"] != "nightly-report" || a.Details["database"] != db || a.At.IsZero() {
		t.Errorf("activity = %+v", a)
	}
	if !strings.HasPrefix(a.Key, "pid "+strconv.Itoa(pid)+" ") {
		t.Errorf("key = %q, want the session's pid %d", a.Key, pid)
	}

	if n, err := s.SampleOnce(ctx); err != nil || n != 0 {
		t.Fatalf("second SampleOnce = %d, %v; want 0, nil", n, err)
	}
	// Nor after a restart.
	restarted := &monitor.Sampler{Store: st, Target: target, Logger: slog.New(slog.DiscardHandler)}
	if n, err := restarted.SampleOnce(ctx); err != nil || n != 0 {
		t.Fatalf("SampleOnce after a restart = %d, %v; want 0, nil", n, err)
	}
	verifyChain(t, st)
}
