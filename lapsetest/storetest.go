package lapsetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/lapse-access/lapse"
)

// TestStore runs the conformance suite for [lapse.Store] implementations.
// open returns a new, empty store and arranges for it to be closed when t
// ends; it is called once per subtest.
//
// Beyond the contract in the interface documentation the suite pins down:
// times keep their instant to the nanosecond (not their location); empty
// and nil slices are alike; ListRequests orders by CreatedAt; AuditFilter's
// Since is inclusive and Until exclusive; UpdateRequest of a missing request
// and PutSecret for one fail with [lapse.ErrNotFound]; a Tx whose function
// fails or panics leaves nothing behind, not even a gap in the audit log;
// the audit tree always holds exactly the committed records.
func TestStore(t *testing.T, open func(t *testing.T) lapse.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s lapse.Store)
	}{
		{"CreateGet", testCreateGet},
		{"CreateDuplicate", testCreateDuplicate},
		{"Update", testUpdate},
		{"UpdateOrAbort", testUpdateOrAbort},
		{"Rollback", testRollback},
		{"Panic", testPanic},
		{"AfterCommit", testAfterCommit},
		{"ListRequests", testListRequests},
		{"ListRequestsDefaultLimit", testListRequestsDefaultLimit},
		{"ActiveGrant", testActiveGrant},
		{"NextDue", testNextDue},
		{"DueRequests", testDueRequests},
		{"ReleaseClaims", testReleaseClaims},
		{"AuditChain", testAuditChain},
		{"AuditChainAfterRollback", testAuditChainAfterRollback},
		{"AuditFilters", testAuditFilters},
		{"AuditPaging", testAuditPaging},
		{"AuditTree", testAuditTree},
		{"AuditTreeConcurrent", testAuditTreeConcurrent},
		{"Checkpoints", testCheckpoints},
		{"ScanAuditFrom", testScanAuditFrom},
		{"Secrets", testSecrets},
		{"Devices", testDevices},
		{"Alerts", testAlerts},
		{"SinkCursors", testSinkCursors},
		{"Sessions", testSessions},
		{"ServiceAccounts", testServiceAccounts},
		{"PendingLogins", testPendingLogins},
		{"LoginCodes", testLoginCodes},
		{"Identities", testIdentities},
		{"Leases", testLeases},
		{"RevokedSerials", testRevokedSerials},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// t0 is the suite's "now". It has nanoseconds so that stores must keep them.
var t0 = time.Date(2031, 3, 14, 15, 9, 26, 535897932, time.UTC)

var errTest = errors.New("test error")

// cmpOpts compare times by instant and treat nil and empty slices alike.
var cmpOpts = []cmp.Option{
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
	cmpopts.EquateEmpty(),
}

// newRequest returns a pending request created at t0.
func newRequest(id, user, resource, role string) lapse.Request {
	return lapse.Request{
		ID: id, User: user, Resource: resource, Role: role,
		Reason: "INC-" + id, Duration: time.Hour,
		State:     lapse.StatePending,
		CreatedAt: t0, UpdatedAt: t0,
		PendingUntil:    t0.Add(24 * time.Hour),
		ApprovalsNeeded: 1,
	}
}

// active returns r active, expiring at expires.
func active(r lapse.Request, expires time.Time) lapse.Request {
	r.State = lapse.StateActive
	r.ActivatedAt = expires.Add(-r.Duration)
	r.ExpiresAt = expires
	r.NextAt = expires
	return r
}

func inTx(t *testing.T, s lapse.Store, fn func(ctx context.Context, tx lapse.Tx) error) {
	t.Helper()
	if err := s.Tx(t.Context(), fn); err != nil {
		t.Fatalf("Tx: %v", err)
	}
}

// create stores rs in one transaction, setting their versions.
func create(t *testing.T, s lapse.Store, rs ...*lapse.Request) {
	t.Helper()
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		for _, r := range rs {
			if err := tx.CreateRequest(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
}

func update(t *testing.T, s lapse.Store, r *lapse.Request) {
	t.Helper()
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error { return tx.UpdateRequest(ctx, r) })
}

func get(t *testing.T, s lapse.Store, id string) lapse.Request {
	t.Helper()
	r, err := s.GetRequest(t.Context(), id)
	if err != nil {
		t.Fatalf("GetRequest(%s): %v", id, err)
	}
	return r
}

func appendAudit(t *testing.T, s lapse.Store, evs ...lapse.AuditEvent) {
	t.Helper()
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error { return tx.AppendAudit(ctx, evs...) })
}

// verifyChain checks the whole audit log and returns how many records it has.
func verifyChain(t *testing.T, s lapse.Store) int64 {
	t.Helper()
	var v lapse.ChainVerifier
	if err := s.ScanAudit(t.Context(), v.Add); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	return v.Count
}

func ids(rs []lapse.Request) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func wantErr(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("%s: got error %v, want one matching %v", what, err, kind)
	}
}

func testCreateGet(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	r := lapse.Request{
		ID: "r1", User: "alice", Resource: "orders-db", Role: "read",
		Reason: "INC-4411", Ticket: "T-1", Duration: 90 * time.Minute,
		StartAt:   t0.Add(time.Minute).In(zone),
		Inputs:    map[string]string{"ssh_public_key": "ssh-ed25519 AAAA alice@laptop"},
		ClientIP:  "192.0.2.7",
		Device:    "laptop-42",
		State:     lapse.StateActive,
		CreatedAt: t0, UpdatedAt: t0.Add(2 * time.Minute),
		PendingUntil:    t0.Add(time.Hour),
		ApprovalsNeeded: 2,
		Approvals: []lapse.Approval{
			{By: "bob", At: t0.Add(time.Second), Comment: "ok"},
			{By: "carol", At: t0.Add(2 * time.Second)},
		},
		ActivatedAt: t0.Add(3 * time.Minute),
		ExpiresAt:   t0.Add(93 * time.Minute),
		EndedAt:     t0.Add(94 * time.Minute),
		EndReason:   lapse.EndRevoked,
		EndedBy:     "sec",
		Note:        "note",
		Extension: &lapse.Extension{
			Duration: 30 * time.Minute, Reason: "more", RequestedAt: t0.Add(4 * time.Minute),
			ApprovalsNeeded: 1, Approvals: []lapse.Approval{{By: "dan", At: t0.Add(5 * time.Minute)}},
		},
		Ref:                "role_alice_1",
		Outputs:            map[string]string{"ssh_certificate": "ssh-ed25519-cert-v01@openssh.com AAAA"},
		Attempts:           3,
		NextAt:             t0.Add(93 * time.Minute),
		Owner:              "worker-1",
		LastError:          "connection refused",
		CredentialsWaiting: true,
		Version:            42,
	}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.CreateRequest(ctx, &r); err != nil {
			return err
		}
		if r.Version != 1 {
			t.Errorf("Version after create = %d, want 1", r.Version)
		}
		got, err := tx.GetRequest(ctx, "r1")
		if err != nil {
			return err
		}
		if diff := cmp.Diff(r, got, cmpOpts...); diff != "" {
			t.Errorf("GetRequest in the creating Tx (-want +got):\n%s", diff)
		}
		_, err = tx.GetRequest(ctx, "missing")
		wantErr(t, "GetRequest(missing) in Tx", err, lapse.ErrNotFound)
		return nil
	})
	if diff := cmp.Diff(r, get(t, s, "r1"), cmpOpts...); diff != "" {
		t.Errorf("GetRequest (-want +got):\n%s", diff)
	}
	_, err := s.GetRequest(ctx, "missing")
	wantErr(t, "GetRequest(missing)", err, lapse.ErrNotFound)

	// A minimal request keeps its zero values.
	m := lapse.Request{ID: "r2", User: "bob", Resource: "web", Role: "admin", State: lapse.StatePending}
	create(t, s, &m)
	if diff := cmp.Diff(m, get(t, s, "r2"), cmpOpts...); diff != "" {
		t.Errorf("GetRequest of a minimal request (-want +got):\n%s", diff)
	}
}

func testCreateDuplicate(t *testing.T, s lapse.Store) {
	r := newRequest("r1", "alice", "db", "read")
	create(t, s, &r)
	dup := newRequest("r1", "mallory", "db", "admin")
	err := s.Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error {
		return tx.CreateRequest(ctx, &dup)
	})
	wantErr(t, "CreateRequest of a duplicate", err, lapse.ErrConflict)
	// A store may send the insert with the next statement: a read after it
	// fails the transaction with the conflict too.
	other := newRequest("r2", "alice", "db", "read")
	err = s.Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.CreateRequest(ctx, &dup); err != nil {
			return err
		}
		if err := tx.CreateRequest(ctx, &other); err != nil {
			return err
		}
		_, err := tx.GetRequest(ctx, "r2")
		return err
	})
	wantErr(t, "CreateRequest of a duplicate, then a read", err, lapse.ErrConflict)
	if diff := cmp.Diff(r, get(t, s, "r1"), cmpOpts...); diff != "" {
		t.Errorf("duplicate changed the stored request (-want +got):\n%s", diff)
	}
	_, err = s.GetRequest(t.Context(), "r2")
	wantErr(t, "GetRequest of a request created with a duplicate", err, lapse.ErrNotFound)
}

func testUpdate(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	r := newRequest("r1", "alice", "db", "read")
	r.NextAt = r.PendingUntil
	r.Approvals = []lapse.Approval{{By: "bob", At: t0}}
	create(t, s, &r)
	stale := r

	r = active(r, t0.Add(time.Hour))
	r.NextAt = time.Time{}
	r.Approvals = nil
	r.Extension = &lapse.Extension{Duration: time.Hour, Reason: "more", RequestedAt: t0, ApprovalsNeeded: 1}
	update(t, s, &r)
	if r.Version != 2 {
		t.Errorf("Version after update = %d, want 2", r.Version)
	}
	if diff := cmp.Diff(r, get(t, s, "r1"), cmpOpts...); diff != "" {
		t.Errorf("after update (-want +got):\n%s", diff)
	}

	r.Extension = nil
	update(t, s, &r)
	if diff := cmp.Diff(r, get(t, s, "r1"), cmpOpts...); diff != "" {
		t.Errorf("after clearing the extension (-want +got):\n%s", diff)
	}

	stale.Note = "stale"
	err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.UpdateRequest(ctx, &stale) })
	wantErr(t, "UpdateRequest with a stale version", err, lapse.ErrConflict)
	if stale.Version != 1 {
		t.Errorf("failed update changed Version to %d", stale.Version)
	}
	if diff := cmp.Diff(r, get(t, s, "r1"), cmpOpts...); diff != "" {
		t.Errorf("stale update changed the request (-want +got):\n%s", diff)
	}

	missing := newRequest("nope", "alice", "db", "read")
	missing.Version = 1
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.UpdateRequest(ctx, &missing) })
	wantErr(t, "UpdateRequest of a missing request", err, lapse.ErrNotFound)
}

// testUpdateOrAbort checks UpdateRequestOrAbort: it stores like
// UpdateRequest, deletes the credentials of an ending grant, and fails the
// whole transaction on a stale version or a missing request, whether the
// store checks at the call or later.
func testUpdateOrAbort(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	r := newRequest("r1", "alice", "db", "read")
	create(t, s, &r)
	stale := r

	r = active(r, t0.Add(time.Hour))
	err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.UpdateRequestOrAbort(ctx, &r); err != nil {
			return err
		}
		return tx.PutSecret(ctx, r.ID, []byte("sealed"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 2 {
		t.Errorf("Version after update = %d, want 2", r.Version)
	}
	if diff := cmp.Diff(r, get(t, s, "r1"), cmpOpts...); diff != "" {
		t.Errorf("after update (-want +got):\n%s", diff)
	}

	other := newRequest("r2", "alice", "db", "read")
	create(t, s, &other)
	other.Note = "kept only if the transaction commits"
	stale.Note = "stale"
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.UpdateRequestOrAbort(ctx, &stale); err != nil {
			return err
		}
		return tx.UpdateRequest(ctx, &other)
	})
	wantErr(t, "UpdateRequestOrAbort with a stale version", err, lapse.ErrConflict)
	if diff := cmp.Diff(r, get(t, s, "r1"), cmpOpts...); diff != "" {
		t.Errorf("stale update changed the request (-want +got):\n%s", diff)
	}
	if got := get(t, s, "r2"); got.Note != "" {
		t.Errorf("a transaction failed by a stale version kept another update: note %q", got.Note)
	}

	missing := newRequest("nope", "alice", "db", "read")
	missing.Version = 1
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.UpdateRequestOrAbort(ctx, &missing) })
	wantErr(t, "UpdateRequestOrAbort of a missing request", err, lapse.ErrNotFound)

	// A transaction that fails after the write leaves the caller's
	// Version as it was, so that writing again is checked against the
	// version stored.
	cur := get(t, s, "r1")
	mine := cur
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		mine.Note = "mine"
		if err := tx.UpdateRequestOrAbort(ctx, &mine); err != nil {
			return err
		}
		return errTest
	})
	if !errors.Is(err, errTest) {
		t.Fatalf("Tx returned %v, want the function's error", err)
	}
	if mine.Version != cur.Version {
		t.Errorf("Version after a failed UpdateRequestOrAbort = %d, want %d as before", mine.Version, cur.Version)
	}

	// Ending: the sealed credentials go in the same transaction.
	r.State, r.EndedAt = lapse.StateRevoking, t0.Add(time.Minute)
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.UpdateRequestOrAbort(ctx, &r) })
	if err != nil {
		t.Fatal(err)
	}
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		_, err := tx.TakeSecret(ctx, r.ID)
		return err
	})
	wantErr(t, "TakeSecret of a revoking grant", err, lapse.ErrNotFound)
}

func testRollback(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	keep := newRequest("keep", "alice", "db", "read")
	create(t, s, &keep)
	orig := keep

	r := newRequest("r1", "alice", "db", "read")
	r.NextAt = t0
	err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.CreateRequest(ctx, &r); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvRequested, "alice", "", r, nil, t0)); err != nil {
			return err
		}
		if err := tx.PutSecret(ctx, "r1", []byte("sealed")); err != nil {
			return err
		}
		keep.Note = "changed"
		if err := tx.UpdateRequest(ctx, &keep); err != nil {
			return err
		}
		return fmt.Errorf("after writing: %w", errTest)
	})
	if !errors.Is(err, errTest) {
		t.Fatalf("Tx returned %v, want the function's error", err)
	}

	_, err = s.GetRequest(ctx, "r1")
	wantErr(t, "GetRequest of a rolled-back request", err, lapse.ErrNotFound)
	if diff := cmp.Diff(orig, get(t, s, "keep"), cmpOpts...); diff != "" {
		t.Errorf("rolled-back update was kept (-want +got):\n%s", diff)
	}
	if evs, err := s.ListAudit(ctx, lapse.AuditFilter{}); err != nil || len(evs) != 0 {
		t.Errorf("ListAudit after rollback = %d events, %v; want none", len(evs), err)
	}
	if _, ok, err := s.NextDue(ctx); err != nil || ok {
		t.Errorf("NextDue after rollback = %v, %v; want nothing due", ok, err)
	}
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		_, err := tx.TakeSecret(ctx, "r1")
		return err
	})
	wantErr(t, "TakeSecret after rollback", err, lapse.ErrNotFound)

	// The id is free again and the log starts at 1.
	create(t, s, &r)
	appendAudit(t, s, lapse.NewAuditEvent(lapse.EvRequested, "alice", "", r, nil, t0))
	evs, err := s.ListAudit(ctx, lapse.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Seq != 1 || evs[0].PrevHash != "" {
		t.Errorf("after rollback the log is %+v, want one record with Seq 1 and no PrevHash", evs)
	}
}

// testAfterCommit checks that a committed transaction hands its audit
// records, as stored, to the functions registered with AfterCommit, and
// that a rolled-back one calls none.
func testAfterCommit(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	r := newRequest("r1", "alice", "db", "read")
	var calls [][]lapse.AuditEvent
	err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		tx.AfterCommit(func(stored []lapse.AuditEvent) { calls = append(calls, stored) })
		if err := tx.CreateRequest(ctx, &r); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvRequested, "alice", "", r, nil, t0),
			lapse.NewAuditEvent(lapse.EvApproved, "bob", "", r, nil, t0))
	})
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.ListAudit(ctx, lapse.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 {
		t.Fatalf("AfterCommit function called %d times, want once", len(calls))
	}
	if diff := cmp.Diff(want, calls[0], cmpOpts...); diff != "" {
		t.Errorf("AfterCommit got other records than the log holds (-log +got):\n%s", diff)
	}

	calls = nil
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		tx.AfterCommit(func(stored []lapse.AuditEvent) { calls = append(calls, stored) })
		if err := tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvRevoked, "bob", "", r, nil, t0)); err != nil {
			return err
		}
		return errTest
	})
	if !errors.Is(err, errTest) {
		t.Fatalf("Tx returned %v, want the function's error", err)
	}
	if len(calls) != 0 {
		t.Errorf("AfterCommit function of a rolled-back transaction called with %v", calls)
	}
}

func testPanic(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	r := newRequest("r1", "alice", "db", "read")
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Tx swallowed the function's panic")
			}
		}()
		_ = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
			if err := tx.CreateRequest(ctx, &r); err != nil {
				return err
			}
			if err := tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvRequested, "alice", "", r, nil, t0)); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	_, err := s.GetRequest(ctx, "r1")
	wantErr(t, "GetRequest after a panicking Tx", err, lapse.ErrNotFound)

	// The store is still usable for writes.
	r = newRequest("r1", "alice", "db", "read")
	create(t, s, &r)
	appendAudit(t, s, lapse.NewAuditEvent(lapse.EvRequested, "alice", "", r, nil, t0))
	if n := verifyChain(t, s); n != 1 {
		t.Errorf("audit log has %d records, want 1", n)
	}
}

func testListRequests(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	var all []*lapse.Request
	add := func(r lapse.Request) {
		r.CreatedAt = t0.Add(time.Duration(len(all)+1) * time.Minute)
		all = append(all, &r)
	}
	approved := func(r lapse.Request, by ...string) lapse.Request {
		r.ApprovalsNeeded = len(by) + 1
		for _, b := range by {
			r.Approvals = append(r.Approvals, lapse.Approval{By: b, At: t0})
		}
		return r
	}
	extension := func(r lapse.Request, by ...string) lapse.Request {
		r.Extension = &lapse.Extension{Duration: time.Hour, Reason: "more", RequestedAt: t0, ApprovalsNeeded: len(by) + 1}
		for _, b := range by {
			r.Extension.Approvals = append(r.Extension.Approvals, lapse.Approval{By: b, At: t0})
		}
		return r
	}
	exp := t0.Add(time.Hour)
	add(newRequest("p1", "alice", "db", "read"))
	add(newRequest("p2", "bob", "db", "read"))
	add(approved(newRequest("p3", "alice", "web", "admin"), "bob"))
	add(approved(newRequest("p4", "alice", "db", "write"), "carol"))
	add(active(newRequest("a1", "alice", "db", "read"), exp))
	add(extension(active(newRequest("a2", "carol", "db", "read"), exp)))
	add(extension(active(newRequest("a3", "carol", "web", "read"), exp), "bob"))
	add(extension(active(newRequest("a4", "bob", "db", "read"), exp)))
	e1 := newRequest("e1", "alice", "db", "read")
	e1.State = lapse.StateEnded
	add(e1)
	ap1 := newRequest("ap1", "dave", "db", "read")
	ap1.State = lapse.StateApproved
	add(ap1)
	// Stored out of creation order, so that order comes from CreatedAt.
	shuffled := slices.Clone(all)
	slices.Reverse(shuffled[3:])
	create(t, s, shuffled...)

	tests := []struct {
		name string
		f    lapse.RequestFilter
		want []string
	}{
		{"all", lapse.RequestFilter{}, []string{"ap1", "e1", "a4", "a3", "a2", "a1", "p4", "p3", "p2", "p1"}},
		{"pending", lapse.RequestFilter{States: []lapse.State{lapse.StatePending}}, []string{"p4", "p3", "p2", "p1"}},
		{"active or ended", lapse.RequestFilter{States: []lapse.State{lapse.StateActive, lapse.StateEnded}}, []string{"e1", "a4", "a3", "a2", "a1"}},
		{"user", lapse.RequestFilter{User: "alice"}, []string{"e1", "a1", "p4", "p3", "p1"}},
		{"resource", lapse.RequestFilter{Resource: "web"}, []string{"a3", "p3"}},
		{"user resource state", lapse.RequestFilter{User: "alice", Resource: "db", States: []lapse.State{lapse.StateActive}}, []string{"a1"}},
		{"approver", lapse.RequestFilter{Approver: "bob"}, []string{"a2", "p4", "p1"}},
		{"approver pending", lapse.RequestFilter{Approver: "bob", States: []lapse.State{lapse.StatePending}}, []string{"p4", "p1"}},
		{"approver limit", lapse.RequestFilter{Approver: "bob", Limit: 2}, []string{"a2", "p4"}},
		{"other approver", lapse.RequestFilter{Approver: "carol"}, []string{"a4", "p3", "p2", "p1"}},
		{"limit", lapse.RequestFilter{Limit: 3}, []string{"ap1", "e1", "a4"}},
		{"no match", lapse.RequestFilter{User: "nobody"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListRequests(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, ids(got), cmpOpts...); diff != "" {
				t.Errorf("ListRequests(%+v) (-want +got):\n%s", tc.f, diff)
			}
		})
	}

	got, err := s.ListRequests(ctx, lapse.RequestFilter{User: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	want := []lapse.Request{*all[6], *all[5]}
	if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
		t.Errorf("listed requests differ from stored ones (-want +got):\n%s", diff)
	}

	// A transaction lists its own writes.
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		n := newRequest("new", "erin", "db", "read")
		n.CreatedAt = t0.Add(time.Hour)
		if err := tx.CreateRequest(ctx, &n); err != nil {
			return err
		}
		got, err := tx.ListRequests(ctx, lapse.RequestFilter{Limit: 1})
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]string{"new"}, ids(got)); diff != "" {
			t.Errorf("ListRequests in Tx (-want +got):\n%s", diff)
		}
		return nil
	})
}

func testListRequestsDefaultLimit(t *testing.T, s lapse.Store) {
	var rs []*lapse.Request
	for i := range 501 {
		r := newRequest(fmt.Sprintf("r%03d", i), "alice", "db", "read")
		r.CreatedAt = t0.Add(time.Duration(i) * time.Second)
		rs = append(rs, &r)
	}
	create(t, s, rs...)
	got, err := s.ListRequests(t.Context(), lapse.RequestFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 500 || got[0].ID != "r500" || got[499].ID != "r001" {
		t.Errorf("ListRequests with no limit returned %d, want the newest 500", len(got))
	}
}

func testActiveGrant(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	now := t0
	check := func(user, resource, role string, at time.Time, want ...string) {
		t.Helper()
		got, err := s.ActiveGrant(ctx, user, resource, role, at)
		if len(want) == 0 {
			wantErr(t, fmt.Sprintf("ActiveGrant(%s, %s, %s, %s)", user, resource, role, at), err, lapse.ErrNotFound)
			return
		}
		if err != nil {
			t.Errorf("ActiveGrant(%s, %s, %s, %s): %v", user, resource, role, at, err)
			return
		}
		if !slices.Contains(want, got.ID) {
			t.Errorf("ActiveGrant(%s, %s, %s, %s) = %s, want one of %v", user, resource, role, at, got.ID, want)
		}
	}

	g1 := active(newRequest("g1", "alice", "db", "read"), now.Add(time.Hour))
	g2 := active(newRequest("g2", "alice", "db", "read"), now.Add(2*time.Hour))
	edge := active(newRequest("edge", "alice", "db", "write"), now)
	rev := active(newRequest("rev", "alice", "db", "admin"), now.Add(time.Hour))
	rev.State = lapse.StateRevoking
	pend := newRequest("pend", "alice", "web", "read")
	create(t, s, &g1, &g2, &edge, &rev, &pend)

	check("alice", "db", "read", now, "g1", "g2")
	check("alice", "db", "write", now)                               // ExpiresAt == now is over
	check("alice", "db", "write", now.Add(-time.Nanosecond), "edge") // a moment before, it is not
	check("alice", "db", "admin", now)
	check("alice", "web", "read", now)
	check("bob", "db", "read", now)
	check("alice", "db", "read", now.Add(90*time.Minute), "g2")
	check("alice", "db", "read", now.Add(2*time.Hour))

	// Overlapping grants are independent: ending one leaves the other.
	g2.State = lapse.StateEnded
	update(t, s, &g2)
	check("alice", "db", "read", now, "g1")
	if got := get(t, s, "g1"); got.Version != 1 || got.State != lapse.StateActive {
		t.Errorf("ending g2 changed g1: %+v", got)
	}
	g1.State = lapse.StateRevoking
	update(t, s, &g1)
	check("alice", "db", "read", now)
	if got := get(t, s, "g2"); got.Version != 2 || got.State != lapse.StateEnded {
		t.Errorf("revoking g1 changed g2: %+v", got)
	}

	// A transaction sees its own changes.
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		g3 := active(newRequest("g3", "alice", "db", "read"), now.Add(time.Hour))
		if err := tx.CreateRequest(ctx, &g3); err != nil {
			return err
		}
		got, err := tx.ActiveGrant(ctx, "alice", "db", "read", now)
		if err != nil {
			return err
		}
		if got.ID != "g3" {
			t.Errorf("ActiveGrant in Tx = %s, want g3", got.ID)
		}
		return nil
	})
}

func testNextDue(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	next := func() (time.Time, bool) {
		t.Helper()
		at, ok, err := s.NextDue(ctx)
		if err != nil {
			t.Fatalf("NextDue: %v", err)
		}
		return at, ok
	}
	if at, ok := next(); ok {
		t.Errorf("NextDue of an empty store = %s, true", at)
	}
	r1 := newRequest("r1", "alice", "db", "read")
	r1.NextAt = t0.Add(10 * time.Minute)
	r2 := newRequest("r2", "alice", "db", "read")
	r2.NextAt = t0.Add(5 * time.Minute)
	r3 := newRequest("r3", "alice", "db", "read")
	create(t, s, &r1, &r2, &r3)
	if at, ok := next(); !ok || !at.Equal(r2.NextAt) {
		t.Errorf("NextDue = %s, %v; want %s", at, ok, r2.NextAt)
	}
	r2.NextAt = time.Time{}
	update(t, s, &r2)
	if at, ok := next(); !ok || !at.Equal(r1.NextAt) {
		t.Errorf("NextDue = %s, %v; want %s", at, ok, r1.NextAt)
	}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		r1.NextAt = time.Time{}
		if err := tx.UpdateRequest(ctx, &r1); err != nil {
			return err
		}
		at, ok, err := tx.NextDue(ctx)
		if err != nil {
			return err
		}
		if ok {
			t.Errorf("NextDue in Tx = %s, true; want nothing due", at)
		}
		return nil
	})
	if at, ok := next(); ok {
		t.Errorf("NextDue with nothing due = %s, true", at)
	}
}

func testDueRequests(t *testing.T, s lapse.Store) {
	now := t0
	var rs []*lapse.Request
	for _, c := range []struct {
		id   string
		next time.Time
	}{
		{"m1", now.Add(-time.Minute)},
		{"m3", now.Add(-3 * time.Minute)},
		{"now", now},
		{"later", now.Add(time.Nanosecond)},
		{"never", time.Time{}},
		{"m2", now.Add(-2 * time.Minute)},
	} {
		r := newRequest(c.id, "alice", "db", "read")
		r.State = lapse.StateApproved
		r.NextAt = c.next
		rs = append(rs, &r)
	}
	create(t, s, rs...)
	due := func(limit int) []string {
		t.Helper()
		var got []lapse.Request
		inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
			var err error
			got, err = tx.DueRequests(ctx, now, limit)
			return err
		})
		return ids(got)
	}
	if diff := cmp.Diff([]string{"m3", "m2", "m1", "now"}, due(10), cmpOpts...); diff != "" {
		t.Errorf("DueRequests (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"m3", "m2"}, due(2), cmpOpts...); diff != "" {
		t.Errorf("DueRequests with limit 2 (-want +got):\n%s", diff)
	}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		got, err := tx.DueRequests(ctx, now, 1)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(*rs[1], got[0], cmpOpts...); diff != "" {
			t.Errorf("due request differs from the stored one (-want +got):\n%s", diff)
		}
		return nil
	})
}

func testReleaseClaims(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	now := t0
	claimed := func(id string, state lapse.State, owner string) lapse.Request {
		r := newRequest(id, "alice", "db", "read")
		r.State = state
		r.Owner = owner
		r.NextAt = now.Add(time.Hour)
		r.Attempts = 1
		return r
	}
	c1 := claimed("c1", lapse.StateApproved, "w1")
	c2 := claimed("c2", lapse.StateRevoking, "w1")
	c3 := claimed("c3", lapse.StateApproved, "w2")
	c4 := claimed("c4", lapse.StateFailed, "w1")
	c5 := claimed("c5", lapse.StateApproved, "")
	create(t, s, &c1, &c2, &c3, &c4, &c5)

	release := func(owner string) int {
		t.Helper()
		var n int
		inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
			var err error
			n, err = tx.ReleaseClaims(ctx, owner, now)
			return err
		})
		return n
	}
	if n := release("w1"); n != 2 {
		t.Errorf("ReleaseClaims(w1) = %d, want 2", n)
	}
	for _, r := range []lapse.Request{c1, c2} {
		got := get(t, s, r.ID)
		if got.Owner != "" || !got.NextAt.Equal(now) || got.Version != r.Version+1 || got.State != r.State || got.Attempts != r.Attempts {
			t.Errorf("released %s: owner %q, next %s, version %d, state %s, attempts %d; want no owner, next %s, version %d, state and attempts kept",
				r.ID, got.Owner, got.NextAt, got.Version, got.State, got.Attempts, now, r.Version+1)
		}
	}
	for _, r := range []lapse.Request{c3, c4, c5} {
		if diff := cmp.Diff(r, get(t, s, r.ID), cmpOpts...); diff != "" {
			t.Errorf("ReleaseClaims(w1) changed %s (-want +got):\n%s", r.ID, diff)
		}
	}
	if n := release("w1"); n != 0 {
		t.Errorf("ReleaseClaims(w1) again = %d, want 0", n)
	}

	// Whoever held the old version can no longer write it.
	err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.UpdateRequest(ctx, &c1) })
	wantErr(t, "UpdateRequest of a released claim", err, lapse.ErrConflict)

	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		got, err := tx.DueRequests(ctx, now, 10)
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]string{"c1", "c2"}, ids(got)); diff != "" {
			t.Errorf("due after release (-want +got):\n%s", diff)
		}
		return nil
	})
}

// event returns an audit event at t0 plus offset.
func event(typ, user, resource, requestID string, offset time.Duration) lapse.AuditEvent {
	r := lapse.Request{ID: requestID, User: user, Resource: resource, Role: "read", State: lapse.StateActive}
	return lapse.NewAuditEvent(typ, user, lapse.StateApproved, r, map[string]string{"n": offset.String()}, t0.Add(offset))
}

func testAuditChain(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	zone := time.FixedZone("UTC-7", -7*3600)
	var want []lapse.AuditEvent
	batches := [][]lapse.AuditEvent{
		{event(lapse.EvRequested, "alice", "db", "r1", 0)},
		{
			event(lapse.EvApproved, "bob", "db", "r1", time.Second),
			{Time: t0.Add(2 * time.Second).In(zone), Type: "custom", Actor: "system"},
			event(lapse.EvProvisioned, "alice", "db", "r1", 3*time.Second),
		},
	}
	for _, b := range batches {
		appendAudit(t, s, b...)
		want = append(want, b...)
	}
	// Several appends in one transaction, and a transaction with none.
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		for i := range 2 {
			evs := []lapse.AuditEvent{
				event(lapse.EvExpired, "alice", "db", "r1", time.Duration(4+2*i)*time.Second),
				event(lapse.EvEnded, "alice", "db", "r1", time.Duration(5+2*i)*time.Second),
			}
			if err := tx.AppendAudit(ctx, evs...); err != nil {
				return err
			}
			want = append(want, evs...)
		}
		return tx.AppendAudit(ctx)
	})
	appendAudit(t, s)

	prev := ""
	for i := range want {
		want[i].Seq = int64(i + 1)
		want[i].PrevHash = prev
		want[i].Hash = want[i].ComputeHash(prev)
		prev = want[i].Hash
	}
	got, err := s.ListAudit(ctx, lapse.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
		t.Errorf("ListAudit (-want +got):\n%s", diff)
	}
	if n := verifyChain(t, s); n != int64(len(want)) {
		t.Errorf("verified %d records, want %d", n, len(want))
	}

	// A transaction reads its own appends.
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.AppendAudit(ctx, event(lapse.EvRevoked, "sec", "db", "r1", time.Hour)); err != nil {
			return err
		}
		var v lapse.ChainVerifier
		if err := tx.ScanAudit(ctx, v.Add); err != nil {
			t.Errorf("chain in Tx: %v", err)
		}
		if v.Count != int64(len(want)+1) {
			t.Errorf("ScanAudit in Tx saw %d records, want %d", v.Count, len(want)+1)
		}
		return nil
	})

	// ScanAudit stops at fn's first error and returns it.
	calls := 0
	err = s.ScanAudit(ctx, func(lapse.AuditEvent) error {
		calls++
		if calls == 3 {
			return errTest
		}
		return nil
	})
	if !errors.Is(err, errTest) || calls != 3 {
		t.Errorf("ScanAudit returned %v after %d calls, want the function's error after 3", err, calls)
	}
}

func testAuditChainAfterRollback(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	appendAudit(t, s, event(lapse.EvRequested, "alice", "db", "r1", 0), event(lapse.EvApproved, "bob", "db", "r1", time.Second))
	err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.AppendAudit(ctx, event("x", "a", "b", "c", 2*time.Second), event("y", "a", "b", "c", 3*time.Second)); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, event("z", "a", "b", "c", 4*time.Second)); err != nil {
			return err
		}
		return errTest
	})
	if !errors.Is(err, errTest) {
		t.Fatalf("Tx returned %v, want the function's error", err)
	}
	appendAudit(t, s, event(lapse.EvProvisioned, "alice", "db", "r1", 5*time.Second))
	if n := verifyChain(t, s); n != 3 {
		t.Errorf("verified %d records, want 3", n)
	}
	evs, err := s.ListAudit(ctx, lapse.AuditFilter{AfterSeq: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Type != lapse.EvProvisioned || evs[0].Seq != 3 {
		t.Errorf("record after the rolled-back ones: %+v, want %s with Seq 3", evs, lapse.EvProvisioned)
	}
}

func testAuditFilters(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	appendAudit(t, s,
		event(lapse.EvRequested, "alice", "db", "r1", 0),                   // 1
		event(lapse.EvRequested, "bob", "web", "r2", time.Minute),          // 2
		event(lapse.EvApproved, "alice", "db", "r1", 2*time.Minute),        // 3
		event(lapse.EvProvisioned, "alice", "db", "r1", 3*time.Minute),     // 4
		event(lapse.EvRequested, "alice", "web", "r3", 4*time.Minute),      // 5
		event(lapse.EvProvisioned, "bob", "web", "r2", 5*time.Minute),      // 6
		event(lapse.EvExpired, "alice", "db", "r1", 6*time.Minute),         // 7
		event(lapse.EvRequested, "carol", "db", "r4", 7*time.Minute),       // 8
		event(lapse.EvEnded, "alice", "db", "r1", 8*time.Minute),           // 9
		event(lapse.EvCredentialsTaken, "bob", "web", "r2", 9*time.Minute), // 10
	)
	tests := []struct {
		name string
		f    lapse.AuditFilter
		want []int64
	}{
		{"all", lapse.AuditFilter{}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{"user", lapse.AuditFilter{User: "bob"}, []int64{2, 6, 10}},
		{"resource", lapse.AuditFilter{Resource: "web"}, []int64{2, 5, 6, 10}},
		{"request", lapse.AuditFilter{RequestID: "r1"}, []int64{1, 3, 4, 7, 9}},
		{"type", lapse.AuditFilter{Type: lapse.EvRequested}, []int64{1, 2, 5, 8}},
		{"since inclusive", lapse.AuditFilter{Since: t0.Add(7 * time.Minute)}, []int64{8, 9, 10}},
		{"until exclusive", lapse.AuditFilter{Until: t0.Add(2 * time.Minute)}, []int64{1, 2}},
		{"window", lapse.AuditFilter{Since: t0.Add(2 * time.Minute), Until: t0.Add(5*time.Minute + 1)}, []int64{3, 4, 5, 6}},
		{"user and resource", lapse.AuditFilter{User: "alice", Resource: "db"}, []int64{1, 3, 4, 7, 9}},
		{"user resource type", lapse.AuditFilter{User: "alice", Resource: "db", Type: lapse.EvProvisioned}, []int64{4}},
		{"after", lapse.AuditFilter{AfterSeq: 7}, []int64{8, 9, 10}},
		{"after with filter", lapse.AuditFilter{AfterSeq: 3, RequestID: "r1"}, []int64{4, 7, 9}},
		{"limit", lapse.AuditFilter{User: "alice", Limit: 2}, []int64{1, 3}},
		{"none", lapse.AuditFilter{User: "nobody"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := s.ListAudit(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, ev := range evs {
				got = append(got, ev.Seq)
			}
			if diff := cmp.Diff(tc.want, got, cmpOpts...); diff != "" {
				t.Errorf("ListAudit(%+v) (-want +got):\n%s", tc.f, diff)
			}
		})
	}
}

func testAuditPaging(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	const n = 1001
	var evs []lapse.AuditEvent
	for i := range n {
		user := "alice"
		if i%3 == 0 {
			user = "bob"
		}
		evs = append(evs, event(lapse.EvRequested, user, "db", fmt.Sprintf("r%d", i), time.Duration(i)*time.Millisecond))
	}
	appendAudit(t, s, evs[:600]...)
	appendAudit(t, s, evs[600:]...)

	all, err := s.ListAudit(ctx, lapse.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1000 || all[999].Seq != 1000 {
		t.Errorf("ListAudit with no limit returned %d records, want the first 1000", len(all))
	}
	if got := verifyChain(t, s); got != n {
		t.Errorf("verified %d records, want %d", got, n)
	}

	// Paging with a cursor visits every matching record once, in order.
	var paged []int64
	f := lapse.AuditFilter{User: "bob", Limit: 40}
	for {
		page, err := s.ListAudit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range page {
			paged = append(paged, ev.Seq)
		}
		if len(page) < f.Limit {
			break
		}
		f.AfterSeq = page[len(page)-1].Seq
	}
	var want []int64
	for i := 0; i < n; i += 3 {
		want = append(want, int64(i+1))
	}
	if diff := cmp.Diff(want, paged); diff != "" {
		t.Errorf("paged records (-want +got):\n%s", diff)
	}
}

func testSecrets(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	r := newRequest("r1", "alice", "db", "read")
	create(t, s, &r)
	put := func(id, sealed string) error {
		return s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.PutSecret(ctx, id, []byte(sealed)) })
	}
	take := func(id string) (string, error) {
		var b []byte
		err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
			var err error
			b, err = tx.TakeSecret(ctx, id)
			return err
		})
		return string(b), err
	}
	del := func(id string) error {
		return s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.DeleteSecret(ctx, id) })
	}
	mustTake := func(want string) {
		t.Helper()
		got, err := take("r1")
		if err != nil || got != want {
			t.Errorf("TakeSecret = %q, %v; want %q", got, err, want)
		}
	}

	if err := put("r1", "sealed-1"); err != nil {
		t.Fatal(err)
	}
	if err := put("r1", "sealed-2\x00\xff"); err != nil {
		t.Fatal(err)
	}
	mustTake("sealed-2\x00\xff")
	_, err := take("r1")
	wantErr(t, "TakeSecret a second time", err, lapse.ErrNotFound)

	if err := del("r1"); err != nil {
		t.Errorf("DeleteSecret with nothing stored: %v", err)
	}
	if err := put("r1", "sealed-3"); err != nil {
		t.Fatal(err)
	}
	if err := del("r1"); err != nil {
		t.Fatal(err)
	}
	_, err = take("r1")
	wantErr(t, "TakeSecret after DeleteSecret", err, lapse.ErrNotFound)

	wantErr(t, "PutSecret for a missing request", put("nope", "x"), lapse.ErrNotFound)

	// Taking in a transaction that fails keeps the secret.
	if err := put("r1", "sealed-4"); err != nil {
		t.Fatal(err)
	}
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if _, err := tx.TakeSecret(ctx, "r1"); err != nil {
			return err
		}
		return errTest
	})
	if !errors.Is(err, errTest) {
		t.Fatalf("Tx returned %v, want the function's error", err)
	}
	mustTake("sealed-4")

	// An update to an ending state that loses to a concurrent change
	// keeps the credentials: they belong to the request as it is, and the
	// transaction goes on after the conflict.
	if err := put("r1", "sealed-5"); err != nil {
		t.Fatal(err)
	}
	stale := get(t, s, "r1")
	stale.Version--
	stale.State = lapse.StateRevoking
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.UpdateRequest(ctx, &stale); !errors.Is(err, lapse.ErrConflict) {
			return fmt.Errorf("UpdateRequest with a stale version = %v, want a conflict", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustTake("sealed-5")
}

func testConcurrent(t *testing.T, s lapse.Store) {
	const (
		workers = 16
		txs     = 10
	)
	ctx := t.Context()
	counter := newRequest("counter", "system", "db", "read")
	create(t, s, &counter)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	// A reader runs alongside the writers.
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.ListAudit(ctx, lapse.AuditFilter{Limit: 50}); err != nil {
				t.Errorf("ListAudit: %v", err)
				return
			}
			if _, err := s.GetRequest(ctx, "counter"); err != nil {
				t.Errorf("GetRequest: %v", err)
				return
			}
		}
	})
	var writers sync.WaitGroup
	for w := range workers {
		writers.Go(func() {
			for i := range txs {
				r := newRequest(fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("user%d", w), "db", "read")
				r.NextAt = t0.Add(time.Duration(i) * time.Second)
				// Optimistic concurrency: retry the read-modify-write on conflict.
				for {
					err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
						c, err := tx.GetRequest(ctx, "counter")
						if err != nil {
							return err
						}
						c.Attempts++
						if err := tx.UpdateRequest(ctx, &c); err != nil {
							return err
						}
						rr := r
						if err := tx.CreateRequest(ctx, &rr); err != nil {
							return err
						}
						return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvRequested, rr.User, "", rr, nil, t0))
					})
					if errors.Is(err, lapse.ErrConflict) {
						continue
					}
					if err != nil {
						t.Errorf("worker %d: %v", w, err)
						return
					}
					break
				}
			}
		})
	}
	writers.Wait()
	close(stop)
	wg.Wait()

	if n := verifyChain(t, s); n != workers*txs {
		t.Errorf("verified %d records, want %d", n, workers*txs)
	}
	if c := get(t, s, "counter"); c.Attempts != workers*txs || c.Version != workers*txs+1 {
		t.Errorf("counter: attempts %d, version %d; want %d, %d", c.Attempts, c.Version, workers*txs, workers*txs+1)
	}
	got, err := s.ListRequests(ctx, lapse.RequestFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != workers*txs+1 {
		t.Errorf("stored %d requests, want %d", len(got), workers*txs+1)
	}
}

func testDevices(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	if _, err := s.GetDevice(ctx, "laptop-1"); !errors.Is(err, lapse.ErrNotFound) {
		t.Fatalf("GetDevice of an unknown device: %v, want not found", err)
	}
	d := lapse.Device{ID: "laptop-1", Owner: "alice", Managed: true, DiskEncrypted: true, ReportedAt: t0, Source: "mdm"}
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error { return tx.PutDevice(ctx, d) })
	got, err := s.GetDevice(ctx, "laptop-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, got, cmpOpts...); diff != "" {
		t.Errorf("GetDevice (-want +got):\n%s", diff)
	}
	d.Managed, d.ReportedAt = false, t0.Add(time.Hour)
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error { return tx.PutDevice(ctx, d) })
	if got, err := s.GetDevice(ctx, "laptop-1"); err != nil || got.Managed || !got.ReportedAt.Equal(d.ReportedAt) {
		t.Errorf("GetDevice after an update = %+v, %v", got, err)
	}
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.PutDevice(ctx, lapse.Device{}) })
	if !errors.Is(err, lapse.ErrInvalid) {
		t.Errorf("PutDevice without id: %v, want invalid", err)
	}
}
