package lapsetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lapse-access/lapse"
)

func testSessions(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	if _, err := s.SessionByToken(ctx, lapse.HashToken("nope")); !errors.Is(err, lapse.ErrNotFound) {
		t.Fatalf("SessionByToken of an unknown token: %v, want not found", err)
	}
	want := lapse.Session{
		ID: "s1", TokenHash: lapse.HashToken("tok1"), RefreshHash: lapse.HashToken("ref1"),
		User: "alice@example.com", Groups: []string{"eng", "oncall"}, Issuer: "https://idp.example", Subject: "u-1",
		Client: "cli", MFA: lapse.MFASignals{Present: lapse.FlagTrue, At: t0.Add(-time.Minute)}, AuthTime: t0.Add(-time.Minute),
		CreatedAt: t0, ExpiresAt: t0.Add(12 * time.Hour), RefreshExpiresAt: t0.Add(7 * 24 * time.Hour),
	}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error { return tx.CreateSession(ctx, want) })
	got, err := s.SessionByToken(ctx, want.TokenHash)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
		t.Errorf("SessionByToken (-want +got):\n%s", diff)
	}
	dup := want
	dup.ID = "s2"
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.CreateSession(ctx, dup) })
	if !errors.Is(err, lapse.ErrConflict) {
		t.Errorf("CreateSession with a token hash in use: %v, want conflict", err)
	}
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.CreateSession(ctx, lapse.Session{ID: "x"}) })
	if !errors.Is(err, lapse.ErrInvalid) {
		t.Errorf("CreateSession without token hashes: %v, want invalid", err)
	}

	// Rotation: the old refresh token still finds the session (reuse
	// detection), the old bearer token no longer does.
	rotated := want
	rotated.PrevRefreshHash, rotated.RefreshHash = want.RefreshHash, lapse.HashToken("ref2")
	rotated.TokenHash, rotated.ExpiresAt = lapse.HashToken("tok2"), t0.Add(13*time.Hour)
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		return tx.UpdateSession(ctx, rotated)
	})
	if _, err := s.SessionByToken(ctx, want.TokenHash); !errors.Is(err, lapse.ErrNotFound) {
		t.Errorf("old bearer token after rotation: %v, want not found", err)
	}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		for _, h := range []string{lapse.HashToken("ref1"), lapse.HashToken("ref2")} {
			got, err := tx.SessionByRefresh(ctx, h)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(rotated, got, cmpOpts...); diff != "" {
				t.Errorf("SessionByRefresh (-want +got):\n%s", diff)
			}
		}
		if _, err := tx.SessionByRefresh(ctx, lapse.HashToken("ref3")); !errors.Is(err, lapse.ErrNotFound) {
			t.Errorf("SessionByRefresh of an unknown token: %v, want not found", err)
		}
		if _, err := tx.SessionByRefresh(ctx, ""); !errors.Is(err, lapse.ErrNotFound) {
			t.Errorf("SessionByRefresh of an empty hash: %v, want not found", err)
		}
		return nil
	})
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		return tx.UpdateSession(ctx, lapse.Session{ID: "missing"})
	})
	if !errors.Is(err, lapse.ErrNotFound) {
		t.Errorf("UpdateSession of a missing session: %v, want not found", err)
	}

	other := lapse.Session{ID: "s3", TokenHash: lapse.HashToken("tok3"), RefreshHash: lapse.HashToken("ref3"), User: "alice@example.com",
		Client: "web", CreatedAt: t0.Add(time.Second), ExpiresAt: t0.Add(time.Hour), RefreshExpiresAt: t0.Add(time.Hour)}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error { return tx.CreateSession(ctx, other) })
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		ss, err := tx.ListSessions(ctx, "alice@example.com", t0)
		if err != nil {
			return err
		}
		if len(ss) != 2 || ss[0].ID != "s1" || ss[1].ID != "s3" {
			t.Errorf("ListSessions = %v, want s1 and s3", ss)
		}
		if ss, _ := tx.ListSessions(ctx, "alice@example.com", t0.Add(2*time.Hour)); len(ss) != 1 {
			t.Errorf("ListSessions after s3 ran out = %d sessions, want 1", len(ss))
		}
		rotated.RevokedAt = t0.Add(time.Minute)
		return tx.UpdateSession(ctx, rotated)
	})
	got, err = s.SessionByToken(ctx, rotated.TokenHash)
	if err != nil || !got.RevokedAt.Equal(rotated.RevokedAt) || got.Valid(t0.Add(2*time.Minute)) {
		t.Errorf("revoked session = %+v, %v; want revoked and not valid", got, err)
	}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		if ss, _ := tx.ListSessions(ctx, "alice@example.com", t0); len(ss) != 1 || ss[0].ID != "s3" {
			t.Errorf("ListSessions after revoking s1 = %v, want s3", ss)
		}
		return nil
	})
	// A session created much later prunes those that ended more than the
	// retention before it: s3 (refresh expired at t0+1h), not s1.
	later := t0.Add(time.Hour + lapse.SessionRetention + time.Minute)
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		return tx.CreateSession(ctx, lapse.Session{ID: "s4", TokenHash: lapse.HashToken("tok4"), RefreshHash: lapse.HashToken("ref4"),
			User: "bob", Client: "web", CreatedAt: later, ExpiresAt: later.Add(time.Hour), RefreshExpiresAt: later.Add(time.Hour)})
	})
	if _, err := s.SessionByToken(ctx, other.TokenHash); !errors.Is(err, lapse.ErrNotFound) {
		t.Errorf("a session past its retention: %v, want pruned", err)
	}
	if _, err := s.SessionByToken(ctx, rotated.TokenHash); err != nil {
		t.Errorf("a session within its retention was pruned: %v", err)
	}
}

func testServiceAccounts(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	a := lapse.ServiceAccount{Name: "ci-deploy", Groups: []string{"deployers"}, TokenHash: lapse.HashToken("svc1"), CreatedBy: "carol", CreatedAt: t0}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error { return tx.CreateServiceAccount(ctx, a) })
	got, err := s.ServiceAccountByToken(ctx, a.TokenHash)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got, cmpOpts...); diff != "" {
		t.Errorf("ServiceAccountByToken (-want +got):\n%s", diff)
	}
	if _, err := s.ServiceAccountByToken(ctx, lapse.HashToken("other")); !errors.Is(err, lapse.ErrNotFound) {
		t.Errorf("ServiceAccountByToken of an unknown token: %v, want not found", err)
	}
	dup := a
	dup.TokenHash = lapse.HashToken("svc2")
	if err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.CreateServiceAccount(ctx, dup) }); !errors.Is(err, lapse.ErrConflict) {
		t.Errorf("CreateServiceAccount of an existing name: %v, want conflict", err)
	}
	b := lapse.ServiceAccount{Name: "backup", TokenHash: lapse.HashToken("svc3"), CreatedBy: "carol", CreatedAt: t0}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error { return tx.CreateServiceAccount(ctx, b) })
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		got, err := tx.RevokeServiceAccount(ctx, "ci-deploy", t0.Add(time.Hour))
		if err != nil {
			return err
		}
		if !got.RevokedAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("RevokeServiceAccount returned %+v", got)
		}
		return nil
	})
	for name, want := range map[string]error{"ci-deploy": lapse.ErrConflict, "nobody": lapse.ErrNotFound} {
		err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
			_, err := tx.RevokeServiceAccount(ctx, name, t0.Add(2*time.Hour))
			return err
		})
		if !errors.Is(err, want) {
			t.Errorf("RevokeServiceAccount(%s): %v, want %v", name, err, want)
		}
	}
	list, err := s.ListServiceAccounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "backup" || list[1].Name != "ci-deploy" || list[1].RevokedAt.IsZero() || list[0].Groups == nil && len(list[0].Groups) != 0 {
		t.Errorf("ListServiceAccounts = %+v", list)
	}
}

func testPendingLogins(t *testing.T, s lapse.Store) {
	l := lapse.PendingLogin{StateHash: lapse.HashToken("state1"), BrowserHash: lapse.HashToken("b1"), Nonce: "n1", Verifier: "v1",
		ReturnTo: "/requests", CLIRedirect: "http://127.0.0.1:5000/callback", CLIChallenge: "ch", CLIState: "cs", MaxAge: 5 * time.Minute,
		CreatedAt: t0, ExpiresAt: t0.Add(10 * time.Minute)}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error { return tx.PutPendingLogin(ctx, l) })
	old := lapse.PendingLogin{StateHash: lapse.HashToken("old"), CreatedAt: t0.Add(-time.Hour), ExpiresAt: t0.Add(-50 * time.Minute)}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error { return tx.PutPendingLogin(ctx, old) })
	// Storing a newer one removes those expired before it.
	later := lapse.PendingLogin{StateHash: lapse.HashToken("later"), CreatedAt: t0, ExpiresAt: t0.Add(time.Minute)}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error { return tx.PutPendingLogin(ctx, later) })
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		got, err := tx.TakePendingLogin(ctx, l.StateHash)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(l, got, cmpOpts...); diff != "" {
			t.Errorf("TakePendingLogin (-want +got):\n%s", diff)
		}
		if _, err := tx.TakePendingLogin(ctx, l.StateHash); !errors.Is(err, lapse.ErrNotFound) {
			t.Errorf("second TakePendingLogin: %v, want not found", err)
		}
		if _, err := tx.TakePendingLogin(ctx, old.StateHash); !errors.Is(err, lapse.ErrNotFound) {
			t.Errorf("TakePendingLogin of an expired login: %v, want not found (deleted)", err)
		}
		if err := tx.PutPendingLogin(ctx, lapse.PendingLogin{StateHash: "x"}); !errors.Is(err, lapse.ErrInvalid) {
			t.Errorf("PutPendingLogin without times: %v, want invalid", err)
		}
		return nil
	})
	err := s.Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error { return tx.PutPendingLogin(ctx, later) })
	if !errors.Is(err, lapse.ErrConflict) {
		t.Errorf("PutPendingLogin with a state in use: %v, want conflict", err)
	}
}

func testLoginCodes(t *testing.T, s lapse.Store) {
	c := lapse.LoginCode{CodeHash: lapse.HashToken("code1"), Challenge: "challenge", ExpiresAt: t0.Add(time.Minute),
		Session: lapse.Session{User: "bob@example.com", Groups: []string{"leads"}, Issuer: "https://idp.example", Subject: "u-2", Client: "cli",
			MFA: lapse.MFASignals{Present: lapse.FlagFalse}, AuthTime: t0}}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error { return tx.PutLoginCode(ctx, c, t0) })
	expired := lapse.LoginCode{CodeHash: lapse.HashToken("code0"), Challenge: "c", ExpiresAt: t0.Add(-time.Second)}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		return tx.PutLoginCode(ctx, expired, t0.Add(-time.Minute))
	})
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		return tx.PutLoginCode(ctx, lapse.LoginCode{CodeHash: lapse.HashToken("code2"), Challenge: "c", ExpiresAt: t0.Add(time.Minute)}, t0)
	})
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		got, err := tx.TakeLoginCode(ctx, c.CodeHash)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(c, got, cmpOpts...); diff != "" {
			t.Errorf("TakeLoginCode (-want +got):\n%s", diff)
		}
		for _, h := range []string{c.CodeHash, expired.CodeHash} {
			if _, err := tx.TakeLoginCode(ctx, h); !errors.Is(err, lapse.ErrNotFound) {
				t.Errorf("TakeLoginCode of a used or expired code: %v, want not found", err)
			}
		}
		if err := tx.PutLoginCode(ctx, lapse.LoginCode{CodeHash: "x"}, t0); !errors.Is(err, lapse.ErrInvalid) {
			t.Errorf("PutLoginCode without a challenge: %v, want invalid", err)
		}
		return nil
	})
}

func testIdentities(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	if _, err := s.GetIdentity(ctx, "alice"); !errors.Is(err, lapse.ErrNotFound) {
		t.Fatalf("GetIdentity of an unknown user: %v, want not found", err)
	}
	id := lapse.Identity{User: "alice", Groups: []string{"eng"}, Issuer: "https://idp.example", Subject: "u-1", SeenAt: t0}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error { return tx.PutIdentity(ctx, id) })
	id.Groups, id.SeenAt = []string{"eng", "oncall"}, t0.Add(time.Hour)
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error { return tx.PutIdentity(ctx, id) })
	got, err := s.GetIdentity(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(id, got, cmpOpts...); diff != "" {
		t.Errorf("GetIdentity (-want +got):\n%s", diff)
	}
	if err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.PutIdentity(ctx, lapse.Identity{User: "bob"}) }); !errors.Is(err, lapse.ErrInvalid) {
		t.Errorf("PutIdentity without a time: %v, want invalid", err)
	}
}
