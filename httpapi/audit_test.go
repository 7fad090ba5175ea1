package httpapi_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/auditlog"
	"github.com/lapse-access/lapse/client"
)

// TestAuditEndpoints walks the audit endpoints as an admin, a requester,
// an approver and a stranger.
func TestAuditEndpoints(t *testing.T) {
	s := newStack(t)
	ctx := t.Context()
	alice, bob, carol, dave := s.as("alice"), s.as("bob"), s.as("carol"), s.as("dave")
	if _, err := carol.Checkpoint(ctx); err == nil {
		t.Fatal("a checkpoint of an empty log")
	}
	_, err := carol.SignCheckpoint(ctx)
	wantStatus(t, err, 404, "empty")

	p, err := alice.Submit(ctx, api.SubmitRequest{Resource: "db", Role: "admin", Duration: "30m", Reason: "INC-7"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Approve(ctx, p.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	if _, err := dave.Submit(ctx, api.SubmitRequest{Resource: "app", Role: "read", Duration: "1h", Reason: "look"}); err != nil {
		t.Fatal(err)
	}

	// The key is for everyone; signing, verifying, exporting and reports
	// are for admins.
	k, err := alice.AuditKey(ctx)
	vkey, _ := s.key.VerifierKey(ctx)
	if err != nil || k.Key != vkey || k.Origin != "lapse/test" {
		t.Fatalf("key: %+v %v", k, err)
	}
	_, err = alice.SignCheckpoint(ctx)
	wantStatus(t, err, 403, "only admins")
	_, err = alice.VerifyAudit(ctx)
	wantStatus(t, err, 403, "only admins")
	err = alice.Export(ctx, "", &bytes.Buffer{})
	wantStatus(t, err, 403, "only admins")
	_, err = alice.Report(ctx, time.Now().Add(-time.Hour).Format(time.RFC3339), "")
	wantStatus(t, err, 403, "only admins")

	cp, err := carol.SignCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := alice.Checkpoint(ctx)
	if err != nil || got.Size != cp.Size || got.Note != cp.Note || got.Key != vkey {
		t.Fatalf("latest checkpoint: %+v %v, want %+v", got, err, cp)
	}
	v, err := carol.VerifyAudit(ctx)
	if err != nil || !v.OK || v.Checkpoints != 1 || v.Signed != cp.Size || v.Records != cp.Size {
		t.Fatalf("verify: %+v %v", v, err)
	}

	var exp bytes.Buffer
	if err := carol.Export(ctx, "", &exp); err != nil {
		t.Fatal(err)
	}
	if res, _, err := auditlog.VerifyExport(&exp, vkey); err != nil || res.Records != cp.Size {
		t.Fatalf("export: %+v %v", res, err)
	}
	err = carol.Export(ctx, "yesterday", &bytes.Buffer{})
	wantStatus(t, err, 400, "RFC 3339")

	// Proofs: of one's own records, not of others'.
	evs, err := carol.AuditAll(ctx, client.AuditOptions{Request: p.ID})
	if err != nil || len(evs) == 0 {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := alice.Proof(ctx, evs[0].Seq, 0, &buf); err != nil {
		t.Fatal(err)
	}
	pr, err := auditlog.ParseProvenRecord(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pr.Verify(vkey); err != nil {
		t.Errorf("proof: %v", err)
	}
	err = dave.Proof(ctx, evs[0].Seq, 0, &bytes.Buffer{})
	wantStatus(t, err, 404, "not found")
	err = carol.Proof(ctx, 10000, 0, &bytes.Buffer{})
	wantStatus(t, err, 404, "not found")
	if code, _ := raw(t, s, "carol", http.MethodGet, "/v1/audit/x/proof", nil); code != 400 {
		t.Errorf("proof of x: %d", code)
	}
	if code, _ := raw(t, s, "carol", http.MethodGet, "/v1/audit/1/proof?size=10000", nil); code != 400 {
		t.Errorf("proof in a tree too large: %d", code)
	}

	// Evidence: for the requester and admins.
	for _, who := range []string{"alice", "carol"} {
		buf.Reset()
		if err := s.as(who).Evidence(ctx, p.ID, &buf); err != nil {
			t.Fatalf("%s: %v", who, err)
		}
		if res, err := auditlog.VerifyEvidence(buf.Bytes(), vkey); err != nil || res.Evidence.RequestID != p.ID {
			t.Fatalf("%s's evidence: %v", who, err)
		}
	}
	err = bob.Evidence(ctx, p.ID, &bytes.Buffer{})
	wantStatus(t, err, 403, "only the requester")
	err = dave.Evidence(ctx, p.ID, &bytes.Buffer{})
	if err == nil {
		t.Error("a stranger took the evidence")
	}

	rep, err := carol.Report(ctx, time.Now().Add(-time.Hour).Format(time.RFC3339), "")
	if err != nil || len(rep.Grants) != 2 {
		t.Fatalf("report: %+v %v", rep, err)
	}
	_, err = carol.Report(ctx, time.Now().Format(time.RFC3339), time.Now().Add(-time.Hour).Format(time.RFC3339))
	wantStatus(t, err, 400, "until must be after since")
}
