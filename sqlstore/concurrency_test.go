package sqlstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
)

// TestManyReadersAndWriters runs batched write transactions from many
// goroutines while others read, and expects no error (no SQLITE_BUSY).
func TestManyReadersAndWriters(t *testing.T) {
	const (
		writers = 6
		readers = 4
		txs     = 5
		batch   = 20
	)
	ctx := t.Context()
	s := openSQLite(t)
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)

	var wg sync.WaitGroup
	done := make(chan struct{})
	for i := range readers {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				var err error
				switch i % 4 {
				case 0:
					_, err = s.ListAudit(ctx, lapse.AuditFilter{User: "user1", Limit: 100})
				case 1:
					_, err = s.ListRequests(ctx, lapse.RequestFilter{States: []lapse.State{lapse.StateActive}, Limit: 100})
				case 2:
					_, _, err = s.NextDue(ctx)
				case 3:
					_, err = s.ActiveGrant(ctx, "user1", "db", "read", now)
					if errors.Is(err, lapse.ErrNotFound) {
						err = nil
					}
				}
				if err != nil {
					t.Errorf("reader %d: %v", i, err)
					return
				}
			}
		})
	}
	var ww sync.WaitGroup
	for w := range writers {
		ww.Go(func() {
			for n := range txs {
				err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
					for i := range batch {
						r := lapse.Request{
							ID: fmt.Sprintf("w%d-%d-%d", w, n, i), User: fmt.Sprintf("user%d", i%4), Resource: "db", Role: "read",
							State: lapse.StateActive, CreatedAt: now, ExpiresAt: now.Add(time.Hour), NextAt: now.Add(time.Hour),
						}
						if err := tx.CreateRequest(ctx, &r); err != nil {
							return err
						}
						r.NextAt = now.Add(time.Duration(n) * time.Minute)
						if err := tx.UpdateRequest(ctx, &r); err != nil {
							return err
						}
						if err := tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvProvisioned, "expiry", lapse.StateApproved, r, nil, now)); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	ww.Wait()
	close(done)
	wg.Wait()

	var v lapse.ChainVerifier
	if err := s.ScanAudit(ctx, v.Add); err != nil {
		t.Fatal(err)
	}
	if want := int64(writers * txs * batch); v.Count != want {
		t.Errorf("audit log has %d records, want %d", v.Count, want)
	}
}
