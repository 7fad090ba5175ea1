package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lapse-access/lapse"
)

// Default and page sizes.
const (
	defaultRequestLimit = 500
	defaultAuditLimit   = 1000
	// scanPage is how many audit events ScanAudit holds in memory at once.
	scanPage = 1000
)

// reader implements [lapse.Reader] on the read pool or in a transaction.
type reader struct {
	d  *dialect
	q  *queries
	db querier
}

// GetRequest returns the request with id, or an error matching
// [lapse.ErrNotFound].
func (r *reader) GetRequest(ctx context.Context, id string) (lapse.Request, error) {
	req, err := scanRequest(r.db.QueryRowContext(ctx, r.q.getRequest, id))
	if errors.Is(err, sql.ErrNoRows) {
		return lapse.Request{}, lapse.NotFoundf("request %s not found", id)
	}
	if err != nil {
		return lapse.Request{}, fmt.Errorf("get request %s: %w", id, err)
	}
	return req, nil
}

// ListRequests returns the requests matching f, newest first.
func (r *reader) ListRequests(ctx context.Context, f lapse.RequestFilter) ([]lapse.Request, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultRequestLimit
	}
	var (
		where []string
		args  []any
	)
	if len(f.States) > 0 {
		where = append(where, "state IN ("+placeholders(len(f.States))+")")
		for _, s := range f.States {
			args = append(args, string(s))
		}
	}
	if f.User != "" {
		where = append(where, "user_name = ?")
		args = append(args, f.User)
	}
	if f.Resource != "" {
		where = append(where, "resource = ?")
		args = append(args, f.Resource)
	}
	if f.Approver != "" {
		// Who approved what is in JSON; the rest of the test is in Go below.
		where = append(where, "user_name <> ?", "(state = ? OR (state = ? AND extension IS NOT NULL))")
		args = append(args, f.Approver, string(lapse.StatePending), string(lapse.StateActive))
	}
	query := "SELECT " + requestColumns + " FROM requests"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY created_at DESC NULLS LAST, id DESC"
	if f.Approver == "" {
		query += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := r.db.QueryContext(ctx, r.d.sql(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	defer rows.Close()
	var out []lapse.Request
	for len(out) < limit && rows.Next() {
		req, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("list requests: %w", err)
		}
		if f.Approver != "" && !awaitsApproval(req, f.Approver) {
			continue
		}
		out = append(out, req)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	return out, nil
}

// awaitsApproval reports whether approver may still approve r: r is pending,
// or active with an extension waiting, and approver neither made r nor
// approved what waits.
func awaitsApproval(r lapse.Request, approver string) bool {
	if r.User == approver {
		return false
	}
	approvedBy := func(a lapse.Approval) bool { return a.By == approver }
	switch {
	case r.State == lapse.StatePending:
		return !slices.ContainsFunc(r.Approvals, approvedBy)
	case r.State == lapse.StateActive && r.Extension != nil:
		return !slices.ContainsFunc(r.Extension.Approvals, approvedBy)
	}
	return false
}

// ActiveGrant returns the grant of user on resource and role that is active
// at now and expires last, or an error matching [lapse.ErrNotFound].
func (r *reader) ActiveGrant(ctx context.Context, user, resource, role string, now time.Time) (lapse.Grant, error) {
	var e encoder
	at := e.time(now)
	if e.err != nil {
		return lapse.Grant{}, fmt.Errorf("active grant: %w", e.err)
	}
	var id string
	var exp sql.NullInt64
	err := r.db.QueryRowContext(ctx, r.q.activeGrant, user, resource, role, at).Scan(&id, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return lapse.Grant{}, lapse.NotFoundf("%s has no active grant of %s on %s", user, role, resource)
	}
	if err != nil {
		return lapse.Grant{}, fmt.Errorf("active grant: %w", err)
	}
	return lapse.Grant{ID: id, User: user, Resource: resource, Role: role, ExpiresAt: decodeTime(exp)}, nil
}

// NextDue returns the earliest NextAt of all requests, and false when no
// request has anything due.
func (r *reader) NextDue(ctx context.Context) (time.Time, bool, error) {
	var next sql.NullInt64
	if err := r.db.QueryRowContext(ctx, r.q.nextDue).Scan(&next); err != nil {
		return time.Time{}, false, fmt.Errorf("next due: %w", err)
	}
	return decodeTime(next), next.Valid, nil
}

// ListAudit returns the audit events matching f in sequence order. Since is
// inclusive and Until exclusive.
func (r *reader) ListAudit(ctx context.Context, f lapse.AuditFilter) ([]lapse.AuditEvent, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultAuditLimit
	}
	var (
		e     encoder
		where []string
		args  []any
	)
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	if f.AfterSeq > 0 {
		add("seq > ?", f.AfterSeq)
	}
	if !f.Since.IsZero() {
		add("time >= ?", e.time(f.Since))
	}
	if !f.Until.IsZero() {
		add("time < ?", e.time(f.Until))
	}
	if f.User != "" {
		add("user_name = ?", f.User)
	}
	if f.Resource != "" {
		add("resource = ?", f.Resource)
	}
	if f.RequestID != "" {
		add("request_id = ?", f.RequestID)
	}
	if f.Type != "" {
		add("type = ?", f.Type)
	}
	if e.err != nil {
		return nil, fmt.Errorf("list audit: %w", e.err)
	}
	query := "SELECT " + auditReadColumns + " FROM audit"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY seq LIMIT ?"
	args = append(args, limit)
	out, err := r.queryAudit(ctx, make([]lapse.AuditEvent, 0, min(limit, scanPage)), query, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}

// queryAudit appends to out the events query selects: its columns are
// [auditReadColumns], args its arguments after the separator.
func (r *reader) queryAudit(ctx context.Context, out []lapse.AuditEvent, query string, args ...any) ([]lapse.AuditEvent, error) {
	rows, err := r.db.QueryContext(ctx, r.d.sql(query), append([]any{auditSep}, args...)...)
	if err != nil {
		return nil, err
	}
	out, reread, err := readAudit(rows, out)
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	for _, i := range reread {
		if out[i], err = readAuditRow(r.db.QueryRowContext(ctx, r.d.sql(selectAuditRow), out[i].Seq)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ScanAudit calls fn for every audit event in sequence order, stopping at
// the first error, which it returns. It reads a page of events at a time
// and holds no query open while fn runs.
func (r *reader) ScanAudit(ctx context.Context, fn func(lapse.AuditEvent) error) error {
	return r.ScanAuditFrom(ctx, 0, fn)
}

// ScanAuditFrom calls fn for every audit event with a Seq above after, in
// sequence order, stopping at the first error, which it returns. It reads a
// page of events at a time and holds no query open while fn runs.
func (r *reader) ScanAuditFrom(ctx context.Context, after int64, fn func(lapse.AuditEvent) error) error {
	page := make([]lapse.AuditEvent, 0, scanPage)
	for {
		var err error
		if page, err = r.auditPage(ctx, after, page[:0]); err != nil {
			return err
		}
		for _, ev := range page {
			if err := fn(ev); err != nil {
				return err
			}
		}
		if len(page) < scanPage {
			return nil
		}
		after = page[len(page)-1].Seq
		clear(page) // let the strings of this page go
	}
}

// selectAuditPage reads the page of audit events after a Seq.
const selectAuditPage = `SELECT ` + auditReadColumns + ` FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`

// auditPage appends to out the page of scanPage audit events that follows
// the one with Seq after.
func (r *reader) auditPage(ctx context.Context, after int64, out []lapse.AuditEvent) ([]lapse.AuditEvent, error) {
	out, err := r.queryAudit(ctx, out, selectAuditPage, after, scanPage)
	if err != nil {
		return nil, fmt.Errorf("scan audit: %w", err)
	}
	return out, nil
}

// CountRequests returns how many requests are in state.
func (r *reader) CountRequests(ctx context.Context, state lapse.State) (int, error) {
	var n int
	if err := r.db.QueryRowContext(ctx, r.d.sql(`SELECT count(*) FROM requests WHERE state = ?`), string(state)).Scan(&n); err != nil {
		return 0, fmt.Errorf("count requests: %w", err)
	}
	return n, nil
}
