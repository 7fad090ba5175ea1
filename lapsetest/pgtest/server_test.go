package pgtest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/lapse-access/lapse/lapsetest/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestSharedServer(t *testing.T) {
	t.Parallel()
	srv := pgtest.Shared(t)
	if again := pgtest.Shared(t); again != srv {
		t.Fatal("Shared started a second server")
	}
	db := srv.CreateDatabase(t)
	conn := srv.Admin(t, db)
	var got string
	if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != db {
		t.Errorf("current_database() = %q, want %q", got, db)
	}
}

func TestPasswordChecked(t *testing.T) {
	t.Parallel()
	srv := pgtest.Shared(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := srv.Open(ctx, srv.User, "wrong", srv.Database)
	if err == nil {
		conn.Close(ctx)
		t.Fatal("login with a wrong password succeeded")
	}
}

func TestStopStart(t *testing.T) {
	t.Parallel()
	srv := pgtest.Start(t)
	if srv.Version == 0 {
		t.Error("Version is 0")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn := srv.Admin(t, srv.Database)
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}

	srv.Stop(t)
	if c, err := srv.Open(ctx, srv.User, srv.Password, srv.Database); err == nil {
		c.Close(ctx)
		t.Fatal("connected to a stopped server")
	}
	if _, err := conn.Exec(ctx, "SELECT 1"); err == nil {
		t.Error("a session survived Stop")
	}

	port := srv.Port
	srv.Start(t)
	if srv.Port != port {
		t.Errorf("port changed across restart: %d, then %d", port, srv.Port)
	}
	var n int
	if err := srv.Admin(t, srv.Database).QueryRow(ctx, "SELECT n FROM kept").Scan(&n); err != nil || n != 42 {
		t.Errorf("after restart: n=%d, err=%v; want 42, nil", n, err)
	}
}

func TestNotRoot(t *testing.T) {
	t.Parallel()
	srv := pgtest.Shared(t)
	var dataDir string
	conn := srv.Admin(t, srv.Database)
	if err := conn.QueryRow(t.Context(), "SHOW data_directory").Scan(&dataDir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if uid := fileUID(fi); uid == 0 {
		t.Errorf("data directory %s is owned by root", dataDir)
	}
}
