package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/lapse-access/lapse"
)

// Sink delivers audit events to one receiver.
type Sink interface {
	// Name names the sink; its cursor is stored under this name.
	Name() string
	// Deliver sends evs, which are in sequence order, and returns nil only
	// once the receiver acknowledged all of them. It must honour ctx.
	Deliver(ctx context.Context, evs []lapse.AuditEvent) error
	// Close releases the sink's connections.
	Close() error
}

// ErrTooLarge is the error of a delivery whose batch the receiver refused
// as too large; the worker then sends smaller batches.
var ErrTooLarge = errors.New("batch too large for the receiver")

// Store is what a [Worker] needs of the store.
type Store interface {
	ListAudit(ctx context.Context, f lapse.AuditFilter) ([]lapse.AuditEvent, error)
	LastAuditSeq(ctx context.Context) (int64, error)
	SinkCursor(ctx context.Context, sink string) (int64, error)
	Tx(ctx context.Context, fn func(ctx context.Context, tx lapse.Tx) error) error
}

// Defaults for the zero values of [Worker]'s tunables.
const (
	DefaultBatch       = 500
	DefaultInterval    = 5 * time.Second
	DefaultMinBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff  = time.Minute
	DefaultCallTimeout = 30 * time.Second
)

// Log attribute keys.
const (
	logSink    = "sink"
	logErr     = "err"
	logBacklog = "backlog"
	logCursor  = "cursor"
	logRetry   = "retry_in"
	logDown    = "down_for"
	logBatch   = "batch"
)

// Worker exports the audit log to one sink. Set the fields, then call Run
// once; Notify and Backlog may be called concurrently with it.
type Worker struct {
	Sink  Sink
	Store Store
	// Batch is the most events one delivery carries; default
	// [DefaultBatch].
	Batch int
	// Interval is how often the worker looks for new events when nothing
	// woke it; default [DefaultInterval].
	Interval time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed deliveries;
	// defaults [DefaultMinBackoff] and [DefaultMaxBackoff].
	MinBackoff, MaxBackoff time.Duration
	// CallTimeout bounds one delivery; default [DefaultCallTimeout].
	CallTimeout time.Duration
	// Logger receives delivery state changes (down, up); nil means
	// slog.Default() with system=sink.
	Logger *slog.Logger
	// OnError, if set, is called after each failed delivery (for metrics).
	OnError func(sink string)

	wake      chan struct{}
	running   atomic.Bool
	head      atomic.Int64
	delivered atomic.Int64
}

// NewWorker returns a worker for s on store with default tunables.
func NewWorker(s Sink, store Store) *Worker {
	return &Worker{Sink: s, Store: store, wake: make(chan struct{}, 1)}
}

// Notify tells the worker that evs were committed. It never blocks; give it
// to the store's OnCommit.
func (w *Worker) Notify(evs []lapse.AuditEvent) {
	if len(evs) > 0 {
		last := evs[len(evs)-1].Seq
		for {
			cur := w.head.Load()
			if last <= cur || w.head.CompareAndSwap(cur, last) {
				break
			}
		}
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Backlog returns how many committed events the sink has not acknowledged
// yet, as far as the worker knows; 0 while Run is not running (another
// server exports to the sink).
func (w *Worker) Backlog() int64 {
	if !w.running.Load() {
		return 0
	}
	return max(0, w.head.Load()-w.delivered.Load())
}

func (w *Worker) logger() *slog.Logger {
	if w.Logger == nil {
		return slog.Default().With("system", "sink")
	}
	return w.Logger
}

// Run delivers events from the sink's stored cursor on until ctx ends,
// then returns nil. It returns an error only when it cannot start (the
// store cannot be read) or when it is already running. It may run again
// after it returned, as when this server holds the sink's lease again: it
// resumes from the cursor stored then.
func (w *Worker) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("sink worker: Run called while running")
	}
	defer w.running.Store(false)
	if w.wake == nil {
		return errors.New("sink worker: make it with NewWorker")
	}
	name := w.Sink.Name()
	log := w.logger().With(logSink, name)
	cursor, err := w.Store.SinkCursor(ctx, name)
	if err != nil {
		return fmt.Errorf("sink %s: %w", name, err)
	}
	w.delivered.Store(cursor)
	if head, err := w.Store.LastAuditSeq(ctx); err == nil {
		w.Notify([]lapse.AuditEvent{{Seq: head}})
	}
	batch := cmpOr(w.Batch, DefaultBatch)
	interval := cmpOr(w.Interval, DefaultInterval)
	minB, maxB := cmpOr(w.MinBackoff, DefaultMinBackoff), cmpOr(w.MaxBackoff, DefaultMaxBackoff)
	timeout := cmpOr(w.CallTimeout, DefaultCallTimeout)
	var (
		failures  int
		downSince time.Time
		pending   []lapse.AuditEvent
	)
	for ctx.Err() == nil {
		if len(pending) == 0 {
			evs, err := w.Store.ListAudit(ctx, lapse.AuditFilter{AfterSeq: cursor, Limit: batch})
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("read audit log for export", logErr, err)
				}
				wait(ctx, nil, interval)
				continue
			}
			if len(evs) == 0 {
				wait(ctx, w.wake, interval)
				continue
			}
			pending = evs
		}
		last := pending[len(pending)-1].Seq
		w.Notify([]lapse.AuditEvent{{Seq: last}})
		dctx, cancel := context.WithTimeout(ctx, timeout)
		err := w.Sink.Deliver(dctx, pending)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if w.OnError != nil {
				w.OnError(name)
			}
			if errors.Is(err, ErrTooLarge) && len(pending) > 1 {
				batch = max(1, len(pending)/2)
				pending = pending[:batch]
				log.Warn("sink refused a batch as too large; sending smaller ones", logErr, err, logBatch, batch)
				continue
			}
			failures++
			d := backoff(failures, minB, maxB)
			if failures == 1 {
				downSince = time.Now()
				log.Warn("sink down", logErr, err, logCursor, cursor, logBacklog, w.Backlog(), logRetry, d)
			} else {
				log.Debug("sink still down", logErr, err, logRetry, d)
			}
			wait(ctx, nil, d)
			continue
		}
		err = w.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.SetSinkCursor(ctx, name, last) })
		if err != nil && ctx.Err() == nil {
			// Delivered but not recorded: the next success records a later
			// cursor; a restart before then sends this batch again.
			log.Warn("record sink cursor", logErr, err, logCursor, last)
		}
		cursor = last
		w.delivered.Store(last)
		pending = nil
		if failures > 0 {
			log.Info("sink up", logDown, time.Since(downSince).Round(time.Millisecond), logCursor, cursor, logBacklog, w.Backlog())
			failures = 0
		}
	}
	return nil
}

// backoff is the wait after the n-th failure in a row: min doubled per
// failure, capped at max, with up to 50% jitter taken off so that several
// Lapse servers do not retry in step.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d - time.Duration(rand.Int64N(int64(d)/2+1))
}

// wait returns after d, when wake fires, or when ctx ends.
func wait(ctx context.Context, wake <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-wake:
	}
}

func cmpOr[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}
