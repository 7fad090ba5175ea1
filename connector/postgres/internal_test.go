package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lapse-access/lapse/lapsetest/pgtest"
)

func TestLiteralRoundTrip(t *testing.T) {
	t.Parallel()
	srv := pgtest.Shared(t)
	conn := srv.Admin(t, srv.Database)
	inputs := []string{
		"", "plain", "it's", `back\slash`, `\'`, `'\`, `''`, `\\\`, "x'; DROP TABLE t; --",
		"é ☃ 日本", "tab\tnew\nline", `E'\x41'`, "$$dollar$$",
	}
	for _, s := range inputs {
		for _, scs := range []string{"on", "off"} {
			q, err := literal(s)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			_, err = conn.Exec(ctx, "SET standard_conforming_strings = "+scs)
			if err == nil {
				// A simple query, as the connector sends its statements.
				var res []*pgconn.Result
				res, err = conn.PgConn().Exec(ctx, "SELECT "+q).ReadAll()
				if err == nil {
					got = string(res[0].Rows[0][0])
				}
			}
			cancel()
			if err != nil {
				t.Fatalf("SELECT %s (standard_conforming_strings=%s): %v", q, scs, err)
			}
			if got != s {
				t.Errorf("literal(%q) = %s reads back as %q with standard_conforming_strings=%s", s, q, got, scs)
			}
		}
	}
	if _, err := literal("a\x00b"); err == nil {
		t.Error("literal accepted a NUL character")
	}
}

func TestSSLMode(t *testing.T) {
	for _, mode := range []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"} {
		cfg, err := pgconn.ParseConfig("postgres://u:p@db.example.com:5432/orders?sslmode=" + mode)
		if err != nil {
			t.Fatalf("sslmode=%s: %v", mode, err)
		}
		if got := sslMode(*cfg); got != mode {
			t.Errorf("sslMode of sslmode=%s = %s", mode, got)
		}
	}
}

func TestTargetURL(t *testing.T) {
	tests := []struct {
		dsn, want string
	}{
		{"postgres://admin:secret@db.example.com:6432/orders?sslmode=require",
			"postgres://lapse_a_1:pw@db.example.com:6432/orders?sslmode=require"},
		{"host=10.0.0.7 user=admin password=secret dbname=orders sslmode=disable",
			"postgres://lapse_a_1:pw@10.0.0.7:5432/orders?sslmode=disable"},
		{"host=/run/postgresql port=5433 user=admin sslmode=disable",
			"postgres://lapse_a_1:pw@/admin?host=%2Frun%2Fpostgresql&port=5433&sslmode=disable"},
		{"postgres://admin:secret@[::1]:5432/orders?sslmode=disable",
			"postgres://lapse_a_1:pw@[::1]:5432/orders?sslmode=disable"},
	}
	for _, tt := range tests {
		cfg, err := pgconn.ParseConfig(tt.dsn)
		if err != nil {
			t.Fatal(err)
		}
		if got := targetOf(*cfg).url("lapse_a_1", "pw"); got != tt.want {
			t.Errorf("url from %q = %q, want %q", tt.dsn, got, tt.want)
		}
	}
}

func TestMasker(t *testing.T) {
	const dsn = "postgres://admin:hunter2@db:5432/orders"
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	m := newMasker(dsn, *cfg)
	plain := errors.New("connection refused")
	if got := m.error(plain); got != plain {
		t.Errorf("an error without secrets was changed: %v", got)
	}
	leaky := errors.Join(context.DeadlineExceeded, errors.New("dial "+dsn+" failed; password hunter2"))
	got := m.error(leaky)
	if strings.Contains(got.Error(), "hunter2") {
		t.Errorf("masked error shows the password: %v", got)
	}
	for e := got; e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), "hunter2") {
			t.Errorf("an unwrapped error shows the password: %v", e)
		}
	}
	if !errors.Is(got, context.DeadlineExceeded) {
		t.Errorf("masked error lost its deadline kind: %v", got)
	}
	if got := m.with("issued-pw").error(errors.New("x issued-pw y")); strings.Contains(got.Error(), "issued-pw") {
		t.Errorf("extra secret not masked: %v", got)
	}
}

func TestScramVerifierFormat(t *testing.T) {
	v, err := scramVerifier("pencil", 4096)
	if err != nil {
		t.Fatal(err)
	}
	rest, ok := strings.CutPrefix(v, "SCRAM-SHA-256$4096:")
	if !ok || strings.Count(rest, "$") != 1 || strings.Count(rest, ":") != 1 {
		t.Errorf("verifier %q is not SCRAM-SHA-256$<iter>:<salt>$<stored>:<server>", v)
	}
	if v2, _ := scramVerifier("pencil", 4096); v2 == v {
		t.Error("two verifiers of one password are equal: the salt is not random")
	}
}
