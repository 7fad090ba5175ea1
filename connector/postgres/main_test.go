package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector/postgres"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// readRole is the existing role that grants are made members of. Roles
// belong to the whole server, so every test database grants it SELECT on
// its own orders table.
const readRole = "orders_read"

// fixture is a database with an orders table that readRole may read, a
// payroll table that it may not, and a connector whose admin DSN points at
// the database.
type fixture struct {
	srv  *pgtest.Server
	db   string
	conn *postgres.Connector
	// admin is a superuser session in db, for checks.
	admin *pgx.Conn
}

func newFixture(t testing.TB, srv *pgtest.Server) *fixture {
	t.Helper()
	f := &fixture{srv: srv, db: srv.CreateDatabase(t)}
	f.admin = srv.Admin(t, f.db)
	f.exec(t, `DO $$ BEGIN CREATE ROLE orders_read NOLOGIN;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`)
	f.exec(t, `
CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL);
INSERT INTO orders VALUES (1, 'book'), (2, 'lamp');
CREATE TABLE payroll (name text, salary int);
INSERT INTO payroll VALUES ('ann', 100);
GRANT SELECT ON orders TO orders_read`)
	f.conn = f.connector(t, postgres.Config{})
	return f
}

// connector returns a connector for f's database, closed when t ends.
// Empty Name and DSN in cfg are filled in.
func (f *fixture) connector(t testing.TB, cfg postgres.Config) *postgres.Connector {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "orders-pg"
	}
	if cfg.DSN == "" {
		cfg.DSN = f.srv.AdminDSNFor(f.db)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := postgres.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (f *fixture) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := f.admin.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// newGrant returns a grant of readRole to user with a fresh random id.
func newGrant(user string, ttl time.Duration) lapse.Grant {
	return lapse.Grant{
		ID:        newID(),
		User:      user,
		Resource:  "orders-db",
		Role:      "read",
		ExpiresAt: time.Now().Add(ttl),
		Settings:  postgres.RoleSettings{Grant: []string{readRole}},
	}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// provision provisions g and returns it with its Ref set, and the result.
func (f *fixture) provision(t testing.TB, g lapse.Grant) (lapse.Grant, lapse.Provisioned) {
	t.Helper()
	p, err := f.conn.Provision(ctxT(t), g)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	g.Ref = p.Ref
	return g, p
}

// login connects with the handed URL.
func login(ctx context.Context, p lapse.Provisioned) (*pgx.Conn, error) {
	return pgx.Connect(ctx, p.Credentials.Value)
}

func mustLogin(t testing.TB, p lapse.Provisioned) *pgx.Conn {
	t.Helper()
	conn, err := login(ctxT(t), p)
	if err != nil {
		t.Fatalf("login with the handed URL: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// roleCount counts roles named role.
func (f *fixture) roleCount(t testing.TB, role string) int {
	t.Helper()
	var n int
	if err := f.admin.QueryRow(ctxT(t), `SELECT count(*) FROM pg_roles WHERE rolname = $1`, role).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// ctxT returns a context for one step of a test.
func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func sqlState(err error) string {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pgErr.Code
	}
	return ""
}

// assertNoSecret fails t if err's message, or any it wraps, contains secret.
func assertNoSecret(t testing.TB, err error, secret string) {
	t.Helper()
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), secret) {
			t.Fatalf("error shows the secret: %v", e)
		}
	}
}
