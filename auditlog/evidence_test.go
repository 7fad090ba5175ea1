package auditlog_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/auditlog"
)

// history stores request r1 through its life, with the policy load before
// it and another request's records in between.
func (f *fixture) history(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	r := lapse.Request{ID: "r1", User: "alice", Resource: "db", Role: "admin", Reason: "INC-1", Duration: time.Hour,
		State: lapse.StatePending, CreatedAt: t0, UpdatedAt: t0, ApprovalsNeeded: 1}
	other := lapse.Request{ID: "r2", User: "bob", Resource: "app", Role: "read", State: lapse.StateActive}
	steps := []func(tx lapse.Tx) error{
		func(tx lapse.Tx) error {
			ev := lapse.NewAuditEvent("policy.loaded", "lapse", "", lapse.Request{}, map[string]string{"hash": "sha256:abc"}, t0)
			return tx.AppendAudit(ctx, ev)
		},
		func(tx lapse.Tx) error {
			if err := tx.CreateRequest(ctx, &r); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvRequested, "alice", "", r, map[string]any{
				"decision": map[string]any{"allow": true, "policies": []string{"eng-may-ask"}, "reasons": []string{"ok"}}}, t0))
		},
		func(tx lapse.Tx) error {
			return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvActivity, "lapse", lapse.StateActive, other, nil, t0.Add(time.Second)))
		},
		func(tx lapse.Tx) error {
			from := r.State
			r.State, r.Approvals = lapse.StateActive, []lapse.Approval{{By: "bob", At: t0.Add(time.Minute), Comment: "ok"}}
			r.ActivatedAt, r.ExpiresAt = t0.Add(time.Minute), t0.Add(time.Hour)
			if err := tx.UpdateRequest(ctx, &r); err != nil {
				return err
			}
			return tx.AppendAudit(ctx,
				lapse.NewAuditEvent(lapse.EvApproved, "bob", from, r, map[string]string{"comment": "ok"}, t0.Add(time.Minute)),
				lapse.NewAuditEvent(lapse.EvProvisioned, "lapse", lapse.StateApproved, r, map[string]string{"ref": "x"}, t0.Add(time.Minute)))
		},
		func(tx lapse.Tx) error {
			return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvActivity, "lapse", lapse.StateActive, r,
				map[string]string{"query": "SELECT 1 WHERE a < b"}, t0.Add(2*time.Minute)))
		},
		func(tx lapse.Tx) error {
			r.State, r.EndedAt, r.EndReason, r.EndedBy = lapse.StateEnded, t0.Add(30*time.Minute), lapse.EndReleased, "alice"
			if err := tx.UpdateRequest(ctx, &r); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvEnded, "lapse", lapse.StateRevoking, r,
				map[string]any{"receipt": map[string]string{"check": "gone"}}, t0.Add(30*time.Minute)))
		},
	}
	for _, step := range steps {
		if err := f.store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return step(tx) }); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEvidence(t *testing.T) {
	f := newFixture(t)
	f.history(t)
	bundle, err := f.log.Evidence(t.Context(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	res, err := auditlog.VerifyEvidence(bundle, f.key)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var seqs []int64
	for _, r := range res.Records {
		seqs = append(seqs, r.Seq)
	}
	e := res.Evidence
	if got := len(seqs); got != 6 || seqs[0] != 1 || e.PolicySet == nil || e.PolicySet.Hash != "sha256:abc" ||
		e.Request.State != lapse.StateEnded || len(e.Approvals) != 1 || !strings.Contains(string(e.Decision), "eng-may-ask") ||
		res.Checkpoint.Size != 7 || len(e.Records[lapse.EvActivity]) != 1 {
		t.Errorf("evidence: records %v, summary %+v, checkpoint %+v", seqs, e, res.Checkpoint)
	}

	if _, err := f.log.Evidence(t.Context(), "nope"); !errors.Is(err, lapse.ErrNotFound) {
		t.Errorf("evidence of a missing request: %v, want not found", err)
	}

	signer, err := f.log.Keys.Signer(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(bundle, note.VerifierList(mustVerifier(t, f.key)))
	if err != nil {
		t.Fatal(err)
	}
	resign := func(text string) []byte {
		b, err := note.Sign(&note.Note{Text: text}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	other := newFixture(t)
	tests := []struct {
		name   string
		bundle []byte
		key    string
		seq    int64 // the bad record, or 0 for any error
	}{
		{"a byte changed", bytes.Replace(bundle, []byte("INC-1"), []byte("INC-2"), 1), f.key, 0},
		{"another key", bundle, other.key, 0},
		{"a record edited, signed again", resign(strings.Replace(n.Text, `"query":"SELECT 1 WHERE`, `"query":"SELECT 2 WHERE`, 1)), f.key, 6},
		{"a record dropped, signed again", resign(dropLine(n.Text, `"type":"grant.ended"`)), f.key, 7},
		{"a record of another request, signed again", resign(strings.Replace(n.Text, `"request_id":"r1","user":"alice","resource":"db","role":"admin","from":"active"`, `"request_id":"r2","user":"alice","resource":"db","role":"admin","from":"active"`, 1)), f.key, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := auditlog.VerifyEvidence(tc.bundle, tc.key)
			if err == nil {
				t.Fatal("verified")
			}
			if tc.seq != 0 {
				if got := chainSeq(t, err); got != tc.seq {
					t.Errorf("bad record %d, want %d: %v", got, tc.seq, err)
				}
			}
		})
	}
}

func dropLine(text, containing string) string {
	var out []string
	for _, l := range strings.SplitAfter(text, "\n") {
		if !strings.Contains(l, containing) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

func mustVerifier(t *testing.T, key string) note.Verifier {
	t.Helper()
	v, err := auditlog.ParseVerifierKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestProofs proves every record of logs of several sizes against every
// size, and refuses a record that was changed.
func TestProofs(t *testing.T) {
	f := newFixture(t)
	f.add(t, 13)
	evs, err := f.store.ListAudit(t.Context(), lapse.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for size := int64(1); size <= 13; size++ {
		tree, _ := auditlog.NewTree(lapse.AuditTree{})
		for _, ev := range evs[:size] {
			if err := tree.Append(ev.Hash); err != nil {
				t.Fatal(err)
			}
		}
		seqs := make([]int64, size)
		for i := range seqs {
			seqs[i] = int64(i + 1)
		}
		ps, err := f.log.Proofs(t.Context(), seqs, size)
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range ps {
			if err := auditlog.VerifyInclusion(evs[i], p, tree.Root()); err != nil {
				t.Errorf("record %d in %d: %v", i+1, size, err)
			}
			changed := evs[i]
			changed.Actor = "mallory"
			if err := auditlog.VerifyInclusion(changed, p, tree.Root()); err == nil {
				t.Errorf("changed record %d in %d verified", i+1, size)
			}
		}
	}
	if _, err := f.log.Proofs(t.Context(), []int64{14}, 13); !errors.Is(err, lapse.ErrInvalid) {
		t.Errorf("proof of a record past the size: %v", err)
	}
	pr, err := f.log.ProveRecord(t.Context(), 5)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pr.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := auditlog.ParseProvenRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := back.Verify(f.key); err != nil {
		t.Errorf("proven record: %v", err)
	}
	if _, err := back.Verify(newFixture(t).key); err == nil {
		t.Error("proven record verified with another key")
	}
}
