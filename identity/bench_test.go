package identity_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/identity"
	"github.com/lapse-access/lapse/lapsetest"
)

// BenchmarkAuthenticate measures what each kind of bearer token costs per
// API call: a static token is a map lookup (the baseline), a session and
// a service token one indexed read of the embedded store.
func BenchmarkAuthenticate(b *testing.B) {
	st := lapsetest.OpenStore(b)
	ids := &identity.Service{Store: st, Logger: discard(), AdminGroups: []string{"security"},
		Local: []identity.LocalUser{{Name: "alice", Groups: []string{"eng"}, TokenSHA256: sha256.Sum256([]byte("tok-alice"))}}}
	if err := ids.Init(); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// Many sessions, so the lookup is an index seek, not a scan of one row.
	now := time.Now()
	var session string
	err := st.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		for i := range 10000 {
			tok := "lapse_s_bench" + string(rune('a'+i%26)) + time.Duration(i).String()
			if i == 5000 {
				session = tok
			}
			err := tx.CreateSession(ctx, lapse.Session{ID: tok, TokenHash: lapse.HashToken(tok), RefreshHash: lapse.HashToken("r" + tok),
				User: "u", Groups: []string{"eng"}, Client: "cli", CreatedAt: now, ExpiresAt: now.Add(time.Hour), RefreshExpiresAt: now.Add(time.Hour)})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	admin := lapse.Principal{Name: "carol", Admin: true}
	svc, _, err := ids.CreateServiceAccount(ctx, admin, "ci", []string{"eng"})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, token string }{{"static", "tok-alice"}, {"session", session}, {"service", svc}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := ids.AuthenticateToken(ctx, tc.token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
