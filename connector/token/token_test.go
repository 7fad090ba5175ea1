package token_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector/token"
)

func newConnector(t *testing.T, now time.Time) *token.Connector {
	t.Helper()
	key, err := token.LoadOrCreateKey(filepath.Join(t.TempDir(), "token.key"))
	if err != nil {
		t.Fatal(err)
	}
	c := token.New(key, "lapse-test")
	c.Now = func() time.Time { return now }
	return c
}

func TestProvisionVerify(t *testing.T) {
	now := time.Now().Truncate(time.Second)
	c := newConnector(t, now)
	g := lapse.Grant{ID: "g1", User: "alice", Resource: "orders", Role: "read", ExpiresAt: now.Add(time.Hour)}
	p, err := c.Provision(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	if p.Ref != "g1" || p.Credentials == nil || p.Credentials.Kind != "token" {
		t.Fatalf("provisioned %+v", p)
	}
	for k, v := range p.Details {
		if strings.Contains(v, p.Credentials.Value) {
			t.Fatalf("detail %s holds the token", k)
		}
	}
	cl, err := c.Verify(p.Credentials.Value)
	if err != nil {
		t.Fatal(err)
	}
	if cl.Subject != "alice" || cl.ID != "g1" || cl.Role != "read" || len(cl.Audience) != 1 || cl.Audience[0] != "orders" || !cl.ExpiresAt.Time.Equal(g.ExpiresAt) {
		t.Fatalf("claims %+v", cl)
	}
	// Expired tokens and tokens from another key are refused.
	late := newConnector(t, now)
	late.Now = func() time.Time { return now.Add(2 * time.Hour) }
	if _, err := late.Verify(p.Credentials.Value); err == nil {
		t.Fatal("token of another key accepted")
	}
	c.Now = func() time.Time { return now.Add(2 * time.Hour) }
	if _, err := c.Verify(p.Credentials.Value); err == nil {
		t.Fatal("expired token accepted")
	}
	// A token with alg none or a tampered payload is refused.
	parts := strings.Split(p.Credentials.Value, ".")
	c.Now = func() time.Time { return now }
	if _, err := c.Verify(parts[0] + "." + parts[1] + "x." + parts[2]); err == nil {
		t.Fatal("tampered token accepted")
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "iss": "lapse-test", "exp": now.Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if _, err := c.Verify(none); err == nil {
		t.Fatal("unsigned token accepted")
	}
}

func TestJWKS(t *testing.T) {
	c := newConnector(t, time.Now())
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(c.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || set.Keys[0]["kty"] != "OKP" || set.Keys[0]["crv"] != "Ed25519" || set.Keys[0]["kid"] != c.KeyID() || set.Keys[0]["x"] == "" {
		t.Fatalf("jwks %+v", set)
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k", "token.key")
	k1, err := token.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v %v", fi.Mode(), err)
	}
	k2, err := token.LoadOrCreateKey(path)
	if err != nil || !k1.Equal(k2) {
		t.Fatalf("reload: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := token.LoadOrCreateKey(path); err == nil {
		t.Fatal("world-readable key accepted")
	}
}

func TestRevokeIdempotent(t *testing.T) {
	c := newConnector(t, time.Now())
	g := lapse.Grant{ID: "g1", User: "alice", Resource: "orders", Role: "read", ExpiresAt: time.Now().Add(time.Hour)}
	for range 2 {
		if err := c.Revoke(context.Background(), g); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := c.VerifyGone(context.Background(), g); err != nil || r["jti"] != "g1" {
		t.Fatalf("receipt %v %v", r, err)
	}
}
