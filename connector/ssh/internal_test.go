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

	gossh "golang.org/x/crypto/ssh"

	"github.com/lapse-access/lapse"
)

func newTestConnector(t testing.TB, now *time.Time) *Connector {
	t.Helper()
	_, ca, _ := ed25519.GenerateKey(rand.Reader)
	c, err := New(Config{Name: "ssh-ca", CAKey: ca, StateDir: t.TempDir(), Now: func() time.Time { return *now }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testGrant(id string, expires time.Time) lapse.Grant {
	return lapse.Grant{ID: id, User: "alice", ExpiresAt: expires, Settings: RoleSettings{Principals: []string{"deploy"}}}
}

func TestSerialIsStable(t *testing.T) {
	now := time.Now()
	c := newTestConnector(t, &now)
	g := testGrant("01J9ZQ5M6", now.Add(time.Hour))
	a, err := c.Provision(t.Context(), g)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Provision(t.Context(), g)
	if err != nil {
		t.Fatal(err)
	}
	if a.Ref != b.Ref || Serial(g.ID)>>63 != 0 || Serial(g.ID) == Serial("01J9ZQ5M7") {
		t.Errorf("refs %s, %s; serial %d", a.Ref, b.Ref, Serial(g.ID))
	}
}

func TestCertificateFields(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newTestConnector(t, &now)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := gossh.NewSignerFromKey(priv)
	g := testGrant("g1", now.Add(time.Hour))
	g.Settings = RoleSettings{Principals: []string{"deploy"}, Extensions: []string{"permit-pty"}, SourceAddress: []string{"10.0.0.0/8"}}
	g.Inputs = map[string]string{InputPublicKey: string(gossh.MarshalAuthorizedKey(key.PublicKey()))}
	p, err := c.Provision(t.Context(), g)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := SplitCredentials(*p.Credentials)
	pub, _, _, _, err := gossh.ParseAuthorizedKey(line)
	if err != nil {
		t.Fatal(err)
	}
	cert := pub.(*gossh.Certificate)
	checker := gossh.CertChecker{Clock: func() time.Time { return now }, SupportedCriticalOptions: []string{"source-address"}}
	if err := checker.CheckCert("deploy", cert); err != nil {
		t.Errorf("CheckCert: %v", err)
	}
	switch {
	case cert.KeyId != "lapse:alice:g1", cert.CertType != gossh.UserCert,
		cert.ValidAfter != uint64(now.Add(-DefaultSkew).Unix()), cert.ValidBefore != uint64(now.Add(time.Hour).Unix()),
		len(cert.Extensions) != 1 || cert.Extensions["permit-pty"] != "",
		cert.CriticalOptions["source-address"] != "10.0.0.0/8",
		!slices.Equal(cert.SignatureKey.Marshal(), c.caBlob):
		t.Errorf("certificate %+v", cert)
	}
}

func TestBadPublicKey(t *testing.T) {
	now := time.Now()
	c := newTestConnector(t, &now)
	for _, in := range []string{"not a key", "ssh-ed25519 AAAA", "ssh-dss AAAAB3NzaC1kc3MAAACBAP"} {
		g := testGrant("g", now.Add(time.Hour))
		g.Inputs = map[string]string{InputPublicKey: in}
		_, err := c.Provision(t.Context(), g)
		if !errors.Is(err, lapse.ErrInvalid) || !lapse.IsUnrecoverable(err) {
			t.Errorf("Provision with key %q = %v, want an unrecoverable ErrInvalid", in, err)
		}
	}
}

func TestKRLPrunesExpired(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := newTestConnector(t, &now)
	short, long := testGrant("short", now.Add(time.Minute)), testGrant("long", now.Add(3*time.Hour))
	for _, g := range []lapse.Grant{short, long} {
		if err := c.Revoke(t.Context(), g); err != nil {
			t.Fatal(err)
		}
	}
	serials := func() []uint64 {
		b, err := c.KRL(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		k, err := parseKRL(b)
		if err != nil {
			t.Fatal(err)
		}
		return k.Serials[string(c.caBlob)]
	}
	want := []uint64{Serial("short"), Serial("long")}
	slices.Sort(want)
	if got := serials(); !slices.Equal(got, want) {
		t.Fatalf("KRL lists %v, want %v", got, want)
	}
	now = now.Add(time.Minute + PruneGrace + time.Second)
	if got := serials(); !slices.Equal(got, []uint64{Serial("long")}) {
		t.Errorf("after the short certificate expired the KRL lists %v, want only %d", got, Serial("long"))
	}
	// VerifyGone still holds for the expired one.
	if _, err := c.VerifyGone(context.Background(), short); err != nil {
		t.Errorf("VerifyGone of an expired grant: %v", err)
	}
	// The next change drops it from the persisted list too, and a new
	// connector reads what survives.
	if err := c.Revoke(t.Context(), long); err != nil {
		t.Fatal(err)
	}
	r, err := loadRevocations(c.statePath)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.until[Serial("short")]; ok || len(r.until) != 1 || r.version != 3 {
		t.Errorf("persisted list %+v", r)
	}
}

func TestRevocationsSurviveRestart(t *testing.T) {
	now := time.Now()
	c := newTestConnector(t, &now)
	g := testGrant("g", now.Add(time.Hour))
	if err := c.Revoke(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	c2, err := New(Config{CAKey: ed25519.PrivateKey(nil), StateDir: filepath.Dir(c.statePath)})
	if err == nil {
		t.Fatal("New accepted an empty key")
	}
	_, ca, _ := ed25519.GenerateKey(rand.Reader)
	if c2, err = New(Config{CAKey: ca, StateDir: filepath.Dir(c.statePath)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.VerifyGone(t.Context(), g); err != nil {
		t.Errorf("VerifyGone after a restart: %v", err)
	}
}

func TestLoadOrCreateCAKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "ca")
	k1, err := LoadOrCreateCAKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	k2, err := LoadOrCreateCAKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Public().(ed25519.PublicKey).Equal(k2.Public()) {
		t.Error("the key loaded is not the key created")
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCAKey(path); err == nil {
		t.Error("loaded a key file that others can read")
	}
}

func TestKRLEmpty(t *testing.T) {
	now := time.Now()
	c := newTestConnector(t, &now)
	b, err := c.KRL(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	k, err := parseKRL(b)
	if err != nil || len(k.Serials) != 0 || k.Comment != "lapse:ssh-ca" {
		t.Errorf("empty KRL: %+v, %v", k, err)
	}
}
