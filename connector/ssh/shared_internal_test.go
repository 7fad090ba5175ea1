package ssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
	"github.com/lapse-access/lapse/sqlstore"
)

func TestMain(m *testing.M) { os.Exit(pgtest.MainNoLeaks(m)) }

// krlSerials returns the serials c's KRL lists under its CA.
func krlSerials(t *testing.T, c *Connector, b []byte) []uint64 {
	t.Helper()
	k, err := parseKRL(b)
	if err != nil {
		t.Fatal(err)
	}
	return k.Serials[string(c.caBlob)]
}

// TestSharedRevocationList is two replicas' connectors on one PostgreSQL:
// a certificate revoked through one is in the KRL the other serves and in
// the KRL file the other keeps for its sshd, and the other refuses to sign
// it again.
func TestSharedRevocationList(t *testing.T) {
	srv := pgtest.Shared(t)
	dsn := srv.AdminDSNFor(srv.CreateDatabase(t))
	_, ca, _ := ed25519.GenerateKey(rand.Reader)
	open := func(krlPath string) *Connector {
		st, err := sqlstore.OpenPostgres(t.Context(), dsn, sqlstore.PostgresOptions{MaxConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		c, err := New(Config{Name: "ssh-ca", CAKey: ca, Store: st, KRLPath: krlPath, KRLRefresh: 50 * time.Millisecond,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := open("")
	krlB := filepath.Join(t.TempDir(), "revoked.krl")
	b := open(krlB)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	g := testGrant("grant-1", time.Now().Add(time.Hour))
	if _, err := a.Provision(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	if _, err := b.VerifyGone(t.Context(), g); err == nil {
		t.Fatal("VerifyGone on replica b passed before the certificate was revoked")
	}
	if err := a.Revoke(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	kb, err := b.KRL(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got := krlSerials(t, b, kb); !slices.Equal(got, []uint64{Serial(g.ID)}) {
		t.Fatalf("replica b's KRL lists %v, want the serial revoked through a, %d", got, Serial(g.ID))
	}
	if _, err := b.Provision(t.Context(), g); !errors.Is(err, lapse.ErrConflict) {
		t.Errorf("replica b signed a revoked grant again: %v", err)
	}
	// Replica b's KRL file follows within its refresh interval.
	deadline := time.Now().Add(5 * time.Second)
	for {
		f, err := os.ReadFile(krlB)
		if err == nil && slices.Contains(krlSerials(t, b, f), Serial(g.ID)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica b's KRL file does not list the revoked serial after 5s (%v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	receipt, err := b.VerifyGone(t.Context(), g)
	if err != nil || receipt["check"] != "serial in KRL file" {
		t.Errorf("VerifyGone on replica b: %v, %v", receipt, err)
	}
}

// TestRevocationFileMovedIntoStore is an upgrade: a revocation list that
// an earlier version kept in the data dir moves into the store on first
// use, and its serials stay revoked.
func TestRevocationFileMovedIntoStore(t *testing.T) {
	_, ca, _ := ed25519.GenerateKey(rand.Reader)
	dir := t.TempDir()
	old, err := New(Config{Name: "ssh-ca", CAKey: ca, StateDir: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	g := testGrant("old-grant", time.Now().Add(time.Hour))
	if err := old.Revoke(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	st, err := sqlstore.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "lapse.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := New(Config{Name: "ssh-ca", CAKey: ca, StateDir: dir, Store: st, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Provision(t.Context(), g); !errors.Is(err, lapse.ErrConflict) {
		t.Errorf("a grant revoked before the upgrade was signed again: %v", err)
	}
	if _, err := os.Stat(old.statePath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old list file is still in place: %v", err)
	}
	if _, err := os.Stat(old.statePath + importedSuffix); err != nil {
		t.Errorf("the old list file was not kept as %s: %v", stateFile+importedSuffix, err)
	}
	list, err := st.RevokedSerials(t.Context(), c.authority(), time.Time{})
	if err != nil || len(list.Serials) != 1 || list.Serials[0].Serial != Serial(g.ID) {
		t.Errorf("the store's list: %+v, %v; want serial %d", list, err, Serial(g.ID))
	}
}
