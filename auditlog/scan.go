package auditlog

import (
	"context"

	"github.com/lapse-access/lapse"
)

// scanBatch is how many records the reader hands over at once.
const scanBatch = 1000

// scan calls fn for every record with a Seq above after, in order, while
// another goroutine reads the next records: hashing and reading overlap.
// It stops at fn's first error, which it returns.
func (l *Log) scan(ctx context.Context, after int64, fn func(lapse.AuditEvent) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []lapse.AuditEvent, 4)
	var readErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(batches)
		send := func(b []lapse.AuditEvent) error {
			select {
			case batches <- b:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		buf := make([]lapse.AuditEvent, 0, scanBatch)
		readErr = l.Store.ScanAuditFrom(ctx, after, func(ev lapse.AuditEvent) error {
			buf = append(buf, ev)
			if len(buf) < scanBatch {
				return nil
			}
			b := buf
			buf = make([]lapse.AuditEvent, 0, scanBatch)
			return send(b)
		})
		if readErr == nil && len(buf) > 0 {
			readErr = send(buf)
		}
	}()
	var err error
loop:
	for b := range batches {
		for _, ev := range b {
			if err = fn(ev); err != nil {
				break loop
			}
		}
	}
	cancel()
	for range batches { // let the reader see the cancellation and stop
	}
	<-done
	if err != nil {
		return err
	}
	return readErr
}
