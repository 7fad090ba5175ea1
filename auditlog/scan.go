package auditlog

import (
	"context"
	"sync"

	"github.com/lapse-access/lapse"
)

// Reading the log for verification, export and proofs: pages of scanPage
// records, scanReaders of them read at once, handed over in order while
// the caller hashes the previous ones.
const (
	scanPage    = 1000
	scanReaders = 2
)

// scanResult is one page: the records with Seq in (start, start+scanPage],
// and whether any record follows start at all.
type scanResult struct {
	evs  []lapse.AuditEvent
	more bool
	err  error
}

// scan calls fn for every record with a Seq above after, in order, while
// other goroutines read the next pages. It stops at fn's first error,
// which it returns.
func (l *Log) scan(ctx context.Context, after int64, fn func(lapse.AuditEvent) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// slots hands over each page's result channel in page order; the
	// reads run ahead by at most scanReaders pages and the buffer.
	slots := make(chan chan scanResult, 2*scanReaders)
	var readers sync.WaitGroup
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(slots)
		sem := make(chan struct{}, scanReaders)
		for start := after; ; start += scanPage {
			slot := make(chan scanResult, 1)
			select {
			case slots <- slot:
			case <-ctx.Done():
				return
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			readers.Go(func() {
				defer func() { <-sem }()
				evs, err := l.Store.ListAudit(ctx, lapse.AuditFilter{AfterSeq: start, Limit: scanPage})
				n := 0
				for n < len(evs) && evs[n].Seq <= start+scanPage {
					n++
				}
				slot <- scanResult{evs: evs[:n], more: len(evs) > 0, err: err}
			})
		}
	}()
	err := func() error {
		for slot := range slots {
			var r scanResult
			select {
			case r = <-slot:
			case <-ctx.Done():
				return ctx.Err()
			}
			if r.err != nil {
				return r.err
			}
			for _, ev := range r.evs {
				if err := fn(ev); err != nil {
					return err
				}
			}
			if !r.more {
				return nil
			}
		}
		return ctx.Err()
	}()
	cancel()
	<-done
	readers.Wait()
	return err
}
