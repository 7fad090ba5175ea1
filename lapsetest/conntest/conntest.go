// Package conntest is the conformance suite that every [lapse.Connector]
// passes: provisioning gives access once however often it is retried,
// revocation takes it away and is safe to repeat, VerifyGone tells the two
// apart, and List maps what exists back to grants.
//
// A connector's tests run it against the real target:
//
//	func TestConformance(t *testing.T) {
//		conntest.Run(t, func(t *testing.T) conntest.Harness { ... })
//	}
package conntest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
)

// Harness adapts one connector to the suite.
type Harness struct {
	// Connector is the connector under test, connected to a target that
	// the test may change freely.
	Connector lapse.Connector
	// Grant returns a grant for user with the given id and expiry, with
	// settings the connector accepts.
	Grant func(id, user string, expires time.Time) lapse.Grant
	// Usable returns nil if p's credentials give access to the target now,
	// and an error if they do not.
	Usable func(ctx context.Context, g lapse.Grant, p lapse.Provisioned) error
}

// Run runs the suite. newHarness is called once per subtest, which may run
// in parallel with the others.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"ProvisionGivesAccess", provisionGivesAccess},
		{"ProvisionTwiceLeavesOne", provisionTwiceLeavesOne},
		{"RevokeRemovesAccess", revokeRemovesAccess},
		{"RevokeIsIdempotent", revokeIsIdempotent},
		{"RevokeNeverProvisioned", revokeNeverProvisioned},
		{"VerifyGoneFailsWhileActive", verifyGoneFailsWhileActive},
		{"ExtendKeepsAccess", extendKeepsAccess},
		{"OddUserName", oddUserName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newHarness(t))
		})
	}
}

func newGrant(h Harness, user string) lapse.Grant {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return h.Grant(hex.EncodeToString(b[:]), user, time.Now().Add(time.Hour))
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func provision(t *testing.T, h Harness, g lapse.Grant) (lapse.Grant, lapse.Provisioned) {
	t.Helper()
	p, err := h.Connector.Provision(ctxFor(t), g)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if p.Ref == "" {
		t.Fatal("Provision returned an empty Ref")
	}
	g.Ref = p.Ref
	return g, p
}

// listed returns what List shows for grant id.
func listed(t *testing.T, h Harness, id string) []lapse.Existing {
	t.Helper()
	all, err := h.Connector.List(ctxFor(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return slices.DeleteFunc(all, func(e lapse.Existing) bool { return e.GrantID != id })
}

func provisionGivesAccess(t *testing.T, h Harness) {
	g, p := provision(t, h, newGrant(h, "alice"))
	if err := h.Usable(ctxFor(t), g, p); err != nil {
		t.Errorf("credentials do not work after Provision: %v", err)
	}
	if got := listed(t, h, g.ID); !slices.Equal(got, []lapse.Existing{{Ref: g.Ref, GrantID: g.ID}}) {
		t.Errorf("List shows %v for the grant, want its Ref %q", got, g.Ref)
	}
}

func provisionTwiceLeavesOne(t *testing.T, h Harness) {
	g := newGrant(h, "bob")
	_, first := provision(t, h, g)
	g, second := provision(t, h, g)
	if first.Ref != second.Ref {
		t.Errorf("Refs differ: %q, then %q", first.Ref, second.Ref)
	}
	if got := listed(t, h, g.ID); len(got) != 1 {
		t.Errorf("List shows %d accesses for the grant after two Provisions, want 1: %v", len(got), got)
	}
	if err := h.Usable(ctxFor(t), g, second); err != nil {
		t.Errorf("the latest credentials do not work: %v", err)
	}
}

func revokeRemovesAccess(t *testing.T, h Harness) {
	g, p := provision(t, h, newGrant(h, "carol"))
	if err := h.Connector.Revoke(ctxFor(t), g); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if err := h.Usable(ctxFor(t), g, p); err == nil {
		t.Error("credentials still work after Revoke")
	}
	if _, err := h.Connector.VerifyGone(ctxFor(t), g); err != nil {
		t.Errorf("VerifyGone after Revoke: %v", err)
	}
	if got := listed(t, h, g.ID); len(got) != 0 {
		t.Errorf("List still shows %v after Revoke", got)
	}
}

func revokeIsIdempotent(t *testing.T, h Harness) {
	g, _ := provision(t, h, newGrant(h, "dave"))
	for i := range 3 {
		if err := h.Connector.Revoke(ctxFor(t), g); err != nil {
			t.Fatalf("Revoke #%d: %v", i+1, err)
		}
	}
	if _, err := h.Connector.VerifyGone(ctxFor(t), g); err != nil {
		t.Errorf("VerifyGone: %v", err)
	}
}

func revokeNeverProvisioned(t *testing.T, h Harness) {
	g := newGrant(h, "erin")
	if err := h.Connector.Revoke(ctxFor(t), g); err != nil {
		t.Errorf("Revoke of a grant never provisioned: %v", err)
	}
	if _, err := h.Connector.VerifyGone(ctxFor(t), g); err != nil {
		t.Errorf("VerifyGone of a grant never provisioned: %v", err)
	}
}

func verifyGoneFailsWhileActive(t *testing.T, h Harness) {
	g, _ := provision(t, h, newGrant(h, "frank"))
	if receipt, err := h.Connector.VerifyGone(ctxFor(t), g); err == nil {
		t.Errorf("VerifyGone succeeded while the access exists: %v", receipt)
	}
}

func extendKeepsAccess(t *testing.T, h Harness) {
	g, p := provision(t, h, newGrant(h, "gina"))
	g.ExpiresAt = g.ExpiresAt.Add(time.Hour)
	creds, err := h.Connector.Extend(ctxFor(t), g)
	if err != nil {
		t.Fatalf("Extend: %v", err)
	}
	if creds != nil {
		p.Credentials = creds
	}
	if err := h.Usable(ctxFor(t), g, p); err != nil {
		t.Errorf("credentials do not work after Extend: %v", err)
	}
}

func oddUserName(t *testing.T, h Harness) {
	g, p := provision(t, h, newGrant(h, `o'brien"; drop table x;--`))
	if err := h.Usable(ctxFor(t), g, p); err != nil {
		t.Errorf("credentials do not work: %v", err)
	}
	if err := h.Connector.Revoke(ctxFor(t), g); err != nil {
		t.Errorf("Revoke: %v", err)
	}
}
