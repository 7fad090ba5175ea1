package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
)

// BenchmarkBatchUpdate measures what the expiry scheduler does: one
// transaction that updates 500 requests and appends an audit event for
// each.
func BenchmarkBatchUpdate(b *testing.B) {
	const batch = 500
	s := openSQLite(b)
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	rs := make([]lapse.Request, batch)
	err := s.Tx(b.Context(), func(ctx context.Context, tx lapse.Tx) error {
		for i := range rs {
			r, err := lapse.NewRequest(lapse.Request{
				ID: fmt.Sprintf("req-%04d", i), User: fmt.Sprintf("user%d", i%50), Resource: "orders-db",
				Role: "read", Reason: "INC-4411", Duration: time.Hour,
			}, 0, time.Hour, now)
			if err != nil {
				return err
			}
			if err := tx.CreateRequest(ctx, &r); err != nil {
				return err
			}
			rs[i] = r
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for n := 0; b.Loop(); n++ {
		at := now.Add(time.Duration(n) * time.Second)
		err := s.Tx(b.Context(), func(ctx context.Context, tx lapse.Tx) error {
			for i := range rs {
				r := rs[i]
				r.NextAt, r.UpdatedAt, r.Attempts = at.Add(time.Minute), at, n
				if err := tx.UpdateRequest(ctx, &r); err != nil {
					return err
				}
				ev := lapse.NewAuditEvent(lapse.EvRevokeFailed, "expiry", r.State, r, map[string]string{"error": "timeout"}, at)
				if err := tx.AppendAudit(ctx, ev); err != nil {
					return err
				}
				rs[i] = r
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "updates/s")
}

// BenchmarkAuditAppend measures appending audit events: one per
// transaction, as a use case does, and 500 per transaction.
func BenchmarkAuditAppend(b *testing.B) {
	for _, batch := range []int{1, 500} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s := openSQLite(b)
			now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
			r := lapse.Request{ID: "req-1", User: "alice", Resource: "orders-db", Role: "read", State: lapse.StateActive}
			evs := make([]lapse.AuditEvent, batch)
			for i := range evs {
				evs[i] = lapse.NewAuditEvent(lapse.EvExtended, "alice", lapse.StateActive, r, map[string]int{"i": i}, now)
			}
			for b.Loop() {
				err := s.Tx(b.Context(), func(ctx context.Context, tx lapse.Tx) error {
					return tx.AppendAudit(ctx, evs...)
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
