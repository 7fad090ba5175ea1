package auditlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/lapse-access/lapse"
)

// DefaultInterval is how often [Log.Run] signs a checkpoint by default.
const DefaultInterval = time.Minute

// Log signs checkpoints of the audit log in a store, verifies the log,
// exports it and proves records. Set the fields, then use it concurrently.
type Log struct {
	Store lapse.Store
	Keys  Keys
	Clock lapse.Clock
	// Interval is how often Run signs a checkpoint when the log grew;
	// default [DefaultInterval].
	Interval time.Duration
	Logger   *slog.Logger
}

func (l *Log) logger() *slog.Logger {
	if l.Logger != nil {
		return l.Logger
	}
	return slog.Default().With("system", "audit")
}

func (l *Log) now() time.Time {
	if l.Clock != nil {
		return l.Clock.Now().UTC()
	}
	return time.Now().UTC()
}

// VerifierKey returns the public key that verifies the log's checkpoints.
func (l *Log) VerifierKey(ctx context.Context) (string, error) {
	return l.Keys.VerifierKey(ctx)
}

func (l *Log) verifier(ctx context.Context) (note.Verifier, error) {
	vkey, err := l.Keys.VerifierKey(ctx)
	if err != nil {
		return nil, err
	}
	return ParseVerifierKey(vkey)
}

// Checkpoint signs a checkpoint of the tree as it is now and stores it,
// unless the latest checkpoint already covers it, which it returns. An
// empty log is an error matching [lapse.ErrNotFound].
func (l *Log) Checkpoint(ctx context.Context) (lapse.Checkpoint, error) {
	signer, err := l.Keys.Signer(ctx)
	if err != nil {
		return lapse.Checkpoint{}, err
	}
	var out lapse.Checkpoint
	err = l.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		st, err := tx.AuditTree(ctx)
		if err != nil {
			return err
		}
		if st.Size == 0 {
			return lapse.NotFoundf("the audit log is empty: there is nothing to sign yet")
		}
		latest, err := tx.LatestCheckpoint(ctx)
		if err == nil && latest.Size >= st.Size {
			out = latest
			return nil
		}
		if err != nil && !errors.Is(err, lapse.ErrNotFound) {
			return err
		}
		root, err := RootOf(st)
		if err != nil {
			return err
		}
		body := CheckpointBody{Origin: signer.Name(), Size: st.Size, Root: root, Time: l.now()}
		msg, err := SignCheckpoint(body, signer)
		if err != nil {
			return err
		}
		out = lapse.Checkpoint{Size: st.Size, Root: root, Time: body.Time, Note: msg}
		return tx.AddCheckpoint(ctx, out)
	})
	if err != nil {
		return lapse.Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	return out, nil
}

// Run signs a checkpoint every Interval while the log grows, and a last
// one when ctx ends, until then.
func (l *Log) Run(ctx context.Context) error {
	every := l.Interval
	if every <= 0 {
		every = DefaultInterval
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			l.sign(final)
			cancel()
			return nil
		case <-t.C:
			l.sign(ctx)
		}
	}
}

func (l *Log) sign(ctx context.Context) {
	c, err := l.Checkpoint(ctx)
	switch {
	case errors.Is(err, lapse.ErrNotFound):
	case err != nil:
		if ctx.Err() == nil {
			l.logger().Error("sign checkpoint", "err", err)
		}
	default:
		l.logger().Debug("checkpoint", "size", c.Size)
	}
}

// checkpoints calls fn for every stored checkpoint of at least fromSize,
// smallest first.
func (l *Log) checkpoints(ctx context.Context, fromSize int64, fn func(lapse.Checkpoint) error) error {
	for {
		page, err := l.Store.ListCheckpoints(ctx, fromSize, 1000)
		if err != nil {
			return err
		}
		for _, c := range page {
			if err := fn(c); err != nil {
				return err
			}
		}
		if len(page) < 1000 {
			return nil
		}
		fromSize = page[len(page)-1].Size + 1
	}
}

// Verify recomputes the chain and the tree from every record and checks
// them against every stored checkpoint and against the tree the store
// keeps. The error is a *[lapse.ChainError] naming the first bad record,
// or a *[CheckpointError].
func (l *Log) Verify(ctx context.Context) (Result, error) {
	key, err := l.verifier(ctx)
	if err != nil {
		return Result{}, err
	}
	v, err := NewVerifier(key, lapse.AuditTree{})
	if err != nil {
		return Result{}, err
	}
	if err := l.checkpoints(ctx, 0, func(c lapse.Checkpoint) error { return v.AddCheckpoint(c.Note) }); err != nil {
		return Result{}, err
	}
	// Records committed before the scan starts are in the tree read
	// before it; every record the scan sees is in the tree read after.
	before, err := l.Store.AuditTree(ctx)
	if err != nil {
		return Result{}, err
	}
	if err := v.CompareTree(before); err != nil {
		return Result{}, err
	}
	if err := l.scan(ctx, 0, v.Add); err != nil {
		res, _ := v.Finish()
		return res, err
	}
	res, err := v.Finish()
	if err != nil {
		return res, err
	}
	after, err := l.Store.AuditTree(ctx)
	if err != nil {
		return res, err
	}
	switch {
	case res.Size < before.Size:
		return res, &lapse.ChainError{Seq: res.Size + 1, Reason: fmt.Sprintf(
			"record %d is missing: Lapse appended %d records, the log holds %d (records were deleted from the end)", res.Size+1, before.Size, res.Size)}
	case res.Size > after.Size:
		return res, &lapse.ChainError{Seq: after.Size + 1, Reason: fmt.Sprintf(
			"record %d was not appended by Lapse, which appended %d records (a record was inserted)", after.Size+1, after.Size)}
	}
	return res, nil
}
