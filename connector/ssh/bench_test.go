package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"strconv"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// BenchmarkProvision measures issuing one certificate for a requester's
// own public key.
func BenchmarkProvision(b *testing.B) {
	now := time.Now()
	c := newTestConnector(b, &now)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := gossh.NewSignerFromKey(priv)
	g := testGrant("bench", now.Add(time.Hour))
	g.Inputs = map[string]string{InputPublicKey: string(gossh.MarshalAuthorizedKey(key.PublicKey()))}
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Provision(b.Context(), g); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKRL100k measures encoding the KRL with 100,000 revoked serials.
func BenchmarkKRL100k(b *testing.B) {
	now := time.Now()
	c := newTestConnector(b, &now)
	c.rev = &revocations{until: map[uint64]int64{}}
	for i := range 100_000 {
		c.rev.until[Serial(strconv.Itoa(i))] = now.Add(time.Hour).Unix()
	}
	b.ResetTimer()
	for b.Loop() {
		k, err := c.KRL(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(k)))
	}
}

// BenchmarkRevoke100k measures one revocation with 100,000 serials already
// listed: the list is persisted and fsynced.
func BenchmarkRevoke100k(b *testing.B) {
	now := time.Now()
	c := newTestConnector(b, &now)
	c.rev = &revocations{until: map[uint64]int64{}}
	for i := range 100_000 {
		c.rev.until[Serial(strconv.Itoa(i))] = now.Add(time.Hour).Unix()
	}
	i := 0
	b.ResetTimer()
	for b.Loop() {
		i++
		if err := c.Revoke(b.Context(), testGrant("new-"+strconv.Itoa(i), now.Add(time.Hour))); err != nil {
			b.Fatal(err)
		}
	}
}
