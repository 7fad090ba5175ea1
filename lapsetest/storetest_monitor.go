package lapsetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lapse-access/lapse"
)

func testAlerts(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	if got, err := s.ListAlerts(ctx, lapse.AlertFilter{}); err != nil || len(got) != 0 {
		t.Fatalf("ListAlerts of an empty store = %v, %v", got, err)
	}
	mk := func(rule, sev, user string, at time.Duration) lapse.Alert {
		return lapse.Alert{Rule: rule, Severity: sev, User: user, Resource: "db", Role: "read", RequestID: "r-" + user,
			Message: rule + " for " + user, Details: map[string]string{"country": "DE"}, RaisedAt: t0.Add(at)}
	}
	in := []lapse.Alert{
		mk("new_country", lapse.SeverityHigh, "alice", 0),
		mk("request_burst", lapse.SeverityLow, "bob", time.Second),
		mk("unusual_hour", lapse.SeverityMedium, "alice", 2*time.Second),
	}
	in[0].Revoke = true
	in[1].Details = nil
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		for i := range in {
			if err := tx.CreateAlert(ctx, &in[i]); err != nil {
				return err
			}
			if err := tx.AppendAudit(ctx, lapse.AlertEvent(in[i], "lapse-monitor")); err != nil {
				return err
			}
		}
		return nil
	})
	for i, a := range in {
		if a.ID == 0 || a.State != lapse.AlertOpen || (i > 0 && a.ID <= in[i-1].ID) {
			t.Fatalf("alert %d after CreateAlert: id %d state %q, want increasing ids, open", i, a.ID, a.State)
		}
	}
	got, err := s.ListAlerts(ctx, lapse.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, got, cmpOpts...); diff != "" {
		t.Errorf("ListAlerts (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name string
		f    lapse.AlertFilter
		want []int64
	}{
		{"user", lapse.AlertFilter{User: "alice"}, []int64{in[0].ID, in[2].ID}},
		{"severity", lapse.AlertFilter{Severity: lapse.SeverityLow}, []int64{in[1].ID}},
		{"after", lapse.AlertFilter{AfterID: in[0].ID}, []int64{in[1].ID, in[2].ID}},
		{"limit", lapse.AlertFilter{Limit: 1}, []int64{in[0].ID}},
		{"state", lapse.AlertFilter{State: lapse.AlertAcknowledged}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListAlerts(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, a := range got {
				ids = append(ids, a.ID)
			}
			if diff := cmp.Diff(tc.want, ids, cmpOpts...); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
		})
	}
	if n, err := s.CountOpenAlerts(ctx, "alice"); err != nil || n != 2 {
		t.Errorf("CountOpenAlerts(alice) = %d, %v, want 2", n, err)
	}
	var acked lapse.Alert
	inTx(t, s, func(ctx context.Context, tx lapse.Tx) error {
		var err error
		acked, err = tx.AckAlert(ctx, in[0].ID, "carol", t0.Add(time.Minute))
		return err
	})
	if acked.State != lapse.AlertAcknowledged || acked.AckedBy != "carol" || !acked.AckedAt.Equal(t0.Add(time.Minute)) || acked.Rule != "new_country" {
		t.Errorf("AckAlert = %+v", acked)
	}
	if n, err := s.CountOpenAlerts(ctx, "alice"); err != nil || n != 1 {
		t.Errorf("CountOpenAlerts(alice) after ack = %d, %v, want 1", n, err)
	}
	if got, _ := s.ListAlerts(ctx, lapse.AlertFilter{State: lapse.AlertAcknowledged}); len(got) != 1 || got[0].ID != in[0].ID || got[0].AckedBy != "carol" {
		t.Errorf("acknowledged alerts = %+v", got)
	}
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		_, err := tx.AckAlert(ctx, in[0].ID, "dave", t0.Add(2*time.Minute))
		return err
	})
	wantErr(t, "AckAlert twice", err, lapse.ErrConflict)
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		_, err := tx.AckAlert(ctx, 999999, "dave", t0)
		return err
	})
	wantErr(t, "AckAlert of a missing alert", err, lapse.ErrNotFound)
	for name, a := range map[string]lapse.Alert{
		"no rule":      {Severity: lapse.SeverityLow, RaisedAt: t0},
		"bad severity": {Rule: "x", Severity: "urgent", RaisedAt: t0},
		"no time":      {Rule: "x", Severity: lapse.SeverityLow},
	} {
		err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.CreateAlert(ctx, &a) })
		wantErr(t, "CreateAlert with "+name, err, lapse.ErrInvalid)
	}
	// A failed transaction keeps no alert.
	err = s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		a := mk("x", lapse.SeverityLow, "eve", 0)
		if err := tx.CreateAlert(ctx, &a); err != nil {
			return err
		}
		return errTest
	})
	if !errors.Is(err, errTest) {
		t.Fatal(err)
	}
	if n, _ := s.CountOpenAlerts(ctx, "eve"); n != 0 {
		t.Errorf("a rolled back alert was kept")
	}
}

func testSinkCursors(t *testing.T, s lapse.Store) {
	ctx := t.Context()
	if seq, err := s.LastAuditSeq(ctx); err != nil || seq != 0 {
		t.Errorf("LastAuditSeq of an empty log = %d, %v", seq, err)
	}
	appendAudit(t, s, event(lapse.EvRequested, "alice", "db", "r1", 0), event(lapse.EvApproved, "alice", "db", "r1", time.Second))
	if seq, err := s.LastAuditSeq(ctx); err != nil || seq != 2 {
		t.Errorf("LastAuditSeq = %d, %v, want 2", seq, err)
	}
	if seq, err := s.SinkCursor(ctx, "siem"); err != nil || seq != 0 {
		t.Errorf("SinkCursor of a new sink = %d, %v", seq, err)
	}
	set := func(sink string, seq int64) error {
		return s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.SetSinkCursor(ctx, sink, seq) })
	}
	for _, seq := range []int64{1, 2, 2} {
		if err := set("siem", seq); err != nil {
			t.Fatalf("SetSinkCursor(%d): %v", seq, err)
		}
	}
	if err := set("other", 1); err != nil {
		t.Fatal(err)
	}
	if seq, err := s.SinkCursor(ctx, "siem"); err != nil || seq != 2 {
		t.Errorf("SinkCursor(siem) = %d, %v, want 2", seq, err)
	}
	if seq, err := s.SinkCursor(ctx, "other"); err != nil || seq != 1 {
		t.Errorf("SinkCursor(other) = %d, %v, want 1", seq, err)
	}
	wantErr(t, "SetSinkCursor backwards", set("siem", 1), lapse.ErrConflict)
	wantErr(t, "SetSinkCursor without a name", set("", 1), lapse.ErrInvalid)
	if seq, _ := s.SinkCursor(ctx, "siem"); seq != 2 {
		t.Errorf("SinkCursor(siem) after a refused move = %d, want 2", seq)
	}
}
