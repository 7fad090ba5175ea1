package postgres_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector/postgres"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
)

func TestSampleActivity(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	g, p := f.provision(t, newGrant("ivy", time.Hour))

	if acts, err := f.conn.SampleActivity(ctxT(t), g); err != nil || len(acts) != 0 {
		t.Fatalf("SampleActivity before any login = %v, %v; want none", acts, err)
	}

	cfg, err := pgx.ParseConfig(p.Credentials.Value)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["application_name"] = "orders-report"
	conn, err := pgx.ConnectConfig(ctxT(t), cfg)
	if err != nil {
		t.Fatalf("login with the handed URL: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	var pid int
	if err := conn.QueryRow(ctxT(t), "SELECT pg_backend_pid() /* monthly */").Scan(&pid); err != nil {
		t.Fatal(err)
	}

	acts, err := f.conn.SampleActivity(ctxT(t), g)
	if err != nil {
		t.Fatal(err)
	}
	if len(acts) != 1 {
		t.Fatalf("SampleActivity = %+v, want one session", acts)
	}
	a := acts[0]
	wantPrefix := "pid " + strconv.Itoa(pid) + " since "
	if !strings.HasPrefix(a.Key, wantPrefix) {
		t.Errorf("Key = %q, want prefix %q", a.Key, wantPrefix)
	}
	at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(a.Key, wantPrefix))
	if err != nil || !at.Equal(a.At) || a.At.Location() != time.UTC {
		t.Errorf("Key = %q, At = %v: want the start time in UTC in both (%v)", a.Key, a.At, err)
	}
	if a.Kind != postgres.ActivityKind || a.At.IsZero() || time.Since(a.At) > time.Minute {
		t.Errorf("activity = %+v, want a recent session", a)
	}
	want := map[string]string{
		"database":         f.db,
		"client_addr":      "127.0.0.1",
		"application_name": "orders-report",
		"state":            "idle",
	}
	for k, v := range want {
		if a.Details[k] != v {
			t.Errorf("Details[%s] = %q, want %q", k, a.Details[k], v)
		}
	}
	if !strings.Contains(a.Details["query"], "monthly") {
		t.Errorf("Details[query] = %q, want the last query", a.Details["query"])
	}

	// The same session sampled again has the same key.
	again, err := f.conn.SampleActivity(ctxT(t), g)
	if err != nil || len(again) != 1 || again[0].Key != a.Key {
		t.Errorf("second sample = %+v, %v; want the same key %q", again, err, a.Key)
	}

	if err := f.conn.Revoke(ctxT(t), g); err != nil {
		t.Fatal(err)
	}
	if acts, err := f.conn.SampleActivity(ctxT(t), g); err != nil || len(acts) != 0 {
		t.Errorf("SampleActivity after Revoke = %v, %v; want none", acts, err)
	}
}

func TestSampleActivityTruncatesQuery(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	g, p := f.provision(t, newGrant("jack", time.Hour))
	conn := mustLogin(t, p)
	long := "SELECT '" + strings.Repeat("x", 500) + "'"
	if _, err := conn.Exec(ctxT(t), long); err != nil {
		t.Fatal(err)
	}
	acts, err := f.conn.SampleActivity(ctxT(t), g)
	if err != nil || len(acts) != 1 {
		t.Fatalf("SampleActivity = %+v, %v; want one session", acts, err)
	}
	if q := acts[0].Details["query"]; len(q) != 200 || !strings.HasPrefix(long, q) {
		t.Errorf("query = %q (%d characters), want the first 200 characters", q, len(q))
	}
}

func TestSampleActivityNeedsAGrant(t *testing.T) {
	t.Parallel()
	f := newFixture(t, pgtest.Shared(t))
	_, err := f.conn.SampleActivity(ctxT(t), lapse.Grant{Ref: "lapse_x_1"})
	if !lapse.IsUnrecoverable(err) {
		t.Errorf("SampleActivity of a grant without id: err = %v, want unrecoverable", err)
	}
}
