package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/auditlog"
)

// tx implements [lapse.Tx] on a write transaction.
type tx struct {
	reader
	s  *Store
	db *txQuerier

	// tree is the audit log's Merkle tree as this transaction sees it,
	// once loaded; appended reports that the transaction extended it.
	tree     *auditlog.Tree
	appended bool
	// changes are this transaction's effects on the active-grant index,
	// applied when it commits.
	changes []activeChange
	// events are the audit events appended, as stored.
	events []lapse.AuditEvent
	// pending are audit events appended and not yet written, where the
	// dialect defers appends to the commit.
	pending []lapse.AuditEvent
	// unsealed are audit events left in audit_pending by the commit, with
	// their pending ids and a head of the log read before, to be sealed.
	unsealed   []lapse.AuditEvent
	unsealedID []int64
	since      int64
	// conn is the connection of a transaction that the store began itself
	// (see [Store.sharedTx]).
	conn *sharedConn
	// after are the functions to call with events once committed.
	after []func([]lapse.AuditEvent)
	// versions are the requests whose Version a queued write set, with the
	// Version each had, to set back if the transaction fails.
	versions []versionWas
}

// versionWas is a request and the Version it had before a queued write.
type versionWas struct {
	r       *lapse.Request
	version int64
}

// restoreVersions sets back the Versions that queued writes set, after
// the transaction failed.
func (t *tx) restoreVersions() {
	for i := len(t.versions) - 1; i >= 0; i-- {
		t.versions[i].r.Version = t.versions[i].version
	}
}

// AfterCommit registers f to be called with the transaction's audit
// records, as stored, once it has committed.
func (t *tx) AfterCommit(f func(stored []lapse.AuditEvent)) {
	t.after = append(t.after, f)
}

// committed tells the store's OnCommit and the functions registered with
// AfterCommit what t stored.
func (t *tx) committed() {
	for _, f := range t.after {
		f(t.events)
	}
	if t.s.OnCommit != nil && len(t.events) > 0 {
		t.s.OnCommit(t.events)
	}
}

var _ lapse.Tx = (*tx)(nil)

// CreateRequest stores a new request with Version 1. A duplicate id is an
// error matching [lapse.ErrConflict].
func (t *tx) CreateRequest(ctx context.Context, r *lapse.Request) error {
	if r.ID == "" {
		return lapse.Invalidf("create request: the request has no id")
	}
	vals, err := requestValues(r)
	if err != nil {
		return fmt.Errorf("create request: %w", err)
	}
	args := make([]any, 0, len(vals)+2)
	args = append(args, r.ID)
	args = append(args, vals...)
	args = append(args, int64(1))
	if t.conn != nil {
		// Sent with the next statement or the commit; a duplicate fails the
		// transaction there.
		t.conn.queue(t.q.insertRequestChecked, append(args, r.ID)...)
		t.versions = append(t.versions, versionWas{r: r, version: r.Version})
		r.Version = 1
		t.changes = append(t.changes, changeOf(r))
		return nil
	}
	res, err := t.db.ExecContext(ctx, t.q.insertRequest, args...)
	if err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	} else if n == 0 {
		return lapse.Conflictf("request %s already exists", r.ID)
	}
	r.Version = 1
	t.changes = append(t.changes, changeOf(r))
	return nil
}

// UpdateRequest stores r if the stored version is still r.Version, and
// increments r.Version. A changed version is an error matching
// [lapse.ErrConflict]; a missing request one matching [lapse.ErrNotFound].
func (t *tx) UpdateRequest(ctx context.Context, r *lapse.Request) error {
	vals, err := mutableValues(r)
	if err != nil {
		return fmt.Errorf("update request: %w", err)
	}
	ending := r.State == lapse.StateRevoking || r.State.Terminal()
	args := append(vals, r.ID, r.Version)
	var n int64
	if ending && t.q.updateEnding != "" {
		err = t.db.QueryRowContext(ctx, t.q.updateEnding, args...).Scan(&n)
	} else {
		var res sql.Result
		if res, err = t.db.ExecContext(ctx, t.q.updateRequest, args...); err == nil {
			n, err = res.RowsAffected()
		}
	}
	if err != nil {
		return fmt.Errorf("update request %s: %w", r.ID, err)
	}
	if n == 0 {
		cur, err := t.GetRequest(ctx, r.ID)
		if err != nil {
			return fmt.Errorf("update request: %w", err)
		}
		return lapse.Conflictf("request %s changed concurrently (version %d, stored %d)", r.ID, r.Version, cur.Version)
	}
	r.Version++
	t.changes = append(t.changes, changeOf(r))
	// No credentials wait for a grant that is ending or over: drop any
	// sealed ones in the same transaction (done above where the update
	// statement could).
	if ending && t.q.updateEnding == "" {
		if err := t.DeleteSecret(ctx, r.ID); err != nil {
			return fmt.Errorf("update request %s: %w", r.ID, err)
		}
	}
	return nil
}

// UpdateRequestOrAbort is UpdateRequest whose write and version check a
// shared store sends with the transaction's next statement or its commit,
// where a conflict fails the transaction.
func (t *tx) UpdateRequestOrAbort(ctx context.Context, r *lapse.Request) error {
	if t.conn == nil {
		was := r.Version
		if err := t.UpdateRequest(ctx, r); err != nil {
			return err
		}
		t.versions = append(t.versions, versionWas{r: r, version: was})
		return nil
	}
	vals, err := mutableValues(r)
	if err != nil {
		return fmt.Errorf("update request: %w", err)
	}
	ending := r.State == lapse.StateRevoking || r.State.Terminal()
	query := t.q.updateRequestChecked
	if ending {
		query = t.q.updateEndingChecked
	}
	args := append(vals, r.ID, r.Version)
	t.conn.queue(query, append(args, r.ID, r.Version)...)
	t.versions = append(t.versions, versionWas{r: r, version: r.Version})
	r.Version++
	t.changes = append(t.changes, changeOf(r))
	return nil
}

// DueRequests returns up to limit requests whose NextAt is at or before
// now, earliest first. A limit of zero or less means 500.
func (t *tx) DueRequests(ctx context.Context, now time.Time, limit int) ([]lapse.Request, error) {
	if limit <= 0 {
		limit = defaultRequestLimit
	}
	var e encoder
	at := e.time(now)
	if e.err != nil {
		return nil, fmt.Errorf("due requests: %w", e.err)
	}
	rows, err := t.db.QueryContext(ctx, t.q.dueRequests, at, limit)
	if err != nil {
		return nil, fmt.Errorf("due requests: %w", err)
	}
	defer rows.Close()
	var out []lapse.Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("due requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("due requests: %w", err)
	}
	return out, nil
}

// AppendAudit appends evs, assigning Seq, PrevHash and Hash. Where several
// servers write, the records are only checked here and written when the
// transaction commits (see [Store.Tx]) or reads the log.
func (t *tx) AppendAudit(ctx context.Context, evs ...lapse.AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	if t.d.deferAudit {
		for i := range evs {
			if _, err := auditValues(&evs[i]); err != nil {
				return fmt.Errorf("append audit: %w", err)
			}
		}
		t.pending = append(t.pending, evs...)
		return nil
	}
	return t.writeAudit(ctx, evs)
}

// flushAudit writes the records that AppendAudit deferred, locking the
// audit tree's row.
func (t *tx) flushAudit(ctx context.Context) error {
	if len(t.pending) == 0 {
		return nil
	}
	if t.conn != nil {
		return t.flushShared(ctx)
	}
	if err := t.writeAudit(ctx, t.pending); err != nil {
		return err
	}
	t.pending = nil
	return nil
}

// writeAudit inserts evs after the head of the log, assigning Seq, PrevHash
// and Hash, and extends the tree.
func (t *tx) writeAudit(ctx context.Context, evs []lapse.AuditEvent) error {
	if err := t.loadTree(ctx); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	// Many rows per statement: the per-statement cost dominates small rows.
	for len(evs) > 0 {
		n := auditInsertChunk
		for n > len(evs) {
			n /= 2
		}
		args := make([]any, 0, n*auditColumnCount)
		for i := range evs[:n] {
			ev := evs[i]
			prev := t.tree.Head()
			ev.Seq = t.tree.Size() + 1
			ev.PrevHash = prev
			ev.Hash = ev.ComputeHash(prev)
			vals, err := auditValues(&ev)
			if err != nil {
				return fmt.Errorf("append audit: %w", err)
			}
			args = append(args, vals...)
			if err := t.tree.Append(ev.Hash); err != nil {
				return fmt.Errorf("append audit: %w", err)
			}
			t.events = append(t.events, ev)
		}
		if _, err := t.db.ExecContext(ctx, t.q.insertAuditRows(n), args...); err != nil {
			return fmt.Errorf("append audit records up to %d: %w", t.tree.Size(), err)
		}
		t.appended = true
		evs = evs[n:]
	}
	return nil
}

// PutSecret stores sealed credentials for the request, replacing any. A
// missing request is an error matching [lapse.ErrNotFound].
func (t *tx) PutSecret(ctx context.Context, requestID string, sealed []byte) error {
	if len(sealed) == 0 {
		return lapse.Invalidf("put secret: nothing to store for request %s", requestID)
	}
	var one int
	err := t.db.QueryRowContext(ctx, t.q.requestExists, requestID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return lapse.NotFoundf("request %s not found", requestID)
	}
	if err != nil {
		return fmt.Errorf("put secret for request %s: %w", requestID, err)
	}
	if _, err := t.db.ExecContext(ctx, t.q.putSecret, requestID, sealed); err != nil {
		return fmt.Errorf("put secret for request %s: %w", requestID, err)
	}
	return nil
}

// TakeSecret returns the sealed credentials for the request and deletes
// them, or an error matching [lapse.ErrNotFound].
func (t *tx) TakeSecret(ctx context.Context, requestID string) ([]byte, error) {
	var sealed []byte
	err := t.db.QueryRowContext(ctx, t.q.takeSecret, requestID).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lapse.NotFoundf("no credentials waiting for request %s", requestID)
	}
	if err != nil {
		return nil, fmt.Errorf("take secret for request %s: %w", requestID, err)
	}
	return sealed, nil
}

// DeleteSecret deletes sealed credentials if there are any.
func (t *tx) DeleteSecret(ctx context.Context, requestID string) error {
	if _, err := t.db.ExecContext(ctx, t.q.deleteSecret, requestID); err != nil {
		return fmt.Errorf("delete secret for request %s: %w", requestID, err)
	}
	return nil
}

// ReleaseClaims makes every request that owner holds a claim on, and that is
// not in a terminal state, due at now and unclaimed, and counts that as a
// change (UpdatedAt is now, Version increments). It returns how many it
// released.
func (t *tx) ReleaseClaims(ctx context.Context, owner string, now time.Time) (int, error) {
	if owner == "" {
		return 0, lapse.Invalidf("release claims: no owner given")
	}
	var e encoder
	at := e.time(now)
	if e.err != nil {
		return 0, fmt.Errorf("release claims: %w", e.err)
	}
	res, err := t.db.ExecContext(ctx, t.q.releaseClaims, at, at, owner)
	if err != nil {
		return 0, fmt.Errorf("release claims of %s: %w", owner, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("release claims of %s: %w", owner, err)
	}
	return int(n), nil
}

// ListAudit returns the audit events matching f, including those this
// transaction appended.
func (t *tx) ListAudit(ctx context.Context, f lapse.AuditFilter) ([]lapse.AuditEvent, error) {
	if err := t.flushAudit(ctx); err != nil {
		return nil, err
	}
	return t.reader.ListAudit(ctx, f)
}

// ScanAudit calls fn for every audit event in sequence order, including
// those this transaction appended.
func (t *tx) ScanAudit(ctx context.Context, fn func(lapse.AuditEvent) error) error {
	return t.ScanAuditFrom(ctx, 0, fn)
}

// ScanAuditFrom calls fn for every audit event with a Seq above after,
// including those this transaction appended.
func (t *tx) ScanAuditFrom(ctx context.Context, after int64, fn func(lapse.AuditEvent) error) error {
	if err := t.flushAudit(ctx); err != nil {
		return err
	}
	return t.reader.ScanAuditFrom(ctx, after, fn)
}
