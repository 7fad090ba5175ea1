package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lapse-access/lapse"
)

// defaultAlertLimit is the number of alerts a listing returns by default.
const defaultAlertLimit = 1000

const alertColumns = `id, rule, severity, state, user_name, resource, role, request_id, message,
	details, auto_revoke, raised_at, acked_by, acked_at`

func scanAlert(row interface{ Scan(...any) error }) (lapse.Alert, error) {
	var (
		a        lapse.Alert
		details  sql.NullString
		raised   int64
		ackedAt  sql.NullInt64
		autoRevk int64
	)
	err := row.Scan(&a.ID, &a.Rule, &a.Severity, &a.State, &a.User, &a.Resource, &a.Role, &a.RequestID, &a.Message,
		&details, &autoRevk, &raised, &a.AckedBy, &ackedAt)
	if err != nil {
		return lapse.Alert{}, err
	}
	if details.Valid && details.String != "" {
		if err := json.Unmarshal([]byte(details.String), &a.Details); err != nil {
			return lapse.Alert{}, fmt.Errorf("decode alert %d details: %w", a.ID, err)
		}
	}
	a.Revoke = autoRevk != 0
	a.RaisedAt = decodeTime(sql.NullInt64{Int64: raised, Valid: true})
	a.AckedAt = decodeTime(ackedAt)
	return a, nil
}

// LastAuditSeq returns the sequence number of the last audit event, 0 when
// the log is empty.
func (r *reader) LastAuditSeq(ctx context.Context) (int64, error) {
	var n int64
	if err := r.db.QueryRowContext(ctx, r.d.sql(`SELECT COALESCE(MAX(seq), 0) FROM audit`)).Scan(&n); err != nil {
		return 0, fmt.Errorf("last audit seq: %w", err)
	}
	return n, nil
}

// ListAlerts returns the alerts matching f in id order.
func (r *reader) ListAlerts(ctx context.Context, f lapse.AlertFilter) ([]lapse.Alert, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultAlertLimit
	}
	var (
		where []string
		args  []any
	)
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	if f.AfterID > 0 {
		add("id > ?", f.AfterID)
	}
	if f.State != "" {
		add("state = ?", f.State)
	}
	if f.Severity != "" {
		add("severity = ?", f.Severity)
	}
	if f.User != "" {
		add("user_name = ?", f.User)
	}
	query := "SELECT " + alertColumns + " FROM alerts"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id LIMIT ?"
	args = append(args, limit)
	rows, err := r.db.QueryContext(ctx, r.d.sql(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	defer rows.Close()
	var out []lapse.Alert
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, fmt.Errorf("list alerts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out, nil
}

// CountOpenAlerts returns how many alerts about user are open.
func (r *reader) CountOpenAlerts(ctx context.Context, user string) (int, error) {
	var n int
	err := r.db.QueryRowContext(ctx, r.d.sql(`SELECT count(*) FROM alerts WHERE user_name = ? AND state = ?`),
		user, lapse.AlertOpen).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count open alerts: %w", err)
	}
	return n, nil
}

// SinkCursor returns the sequence number of the last audit event delivered
// to sink, 0 when none was.
func (r *reader) SinkCursor(ctx context.Context, sink string) (int64, error) {
	var seq int64
	err := r.db.QueryRowContext(ctx, r.d.sql(`SELECT seq FROM sink_cursors WHERE sink = ?`), sink).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sink cursor %s: %w", sink, err)
	}
	return seq, nil
}

// CreateAlert stores a new open alert and sets a.ID and a.State.
func (t *tx) CreateAlert(ctx context.Context, a *lapse.Alert) error {
	switch {
	case a.Rule == "":
		return lapse.Invalidf("create alert: no rule")
	case !lapse.ValidSeverity(a.Severity):
		return lapse.Invalidf("create alert: severity %q is not one of %s", a.Severity, strings.Join(lapse.Severities, ", "))
	case a.RaisedAt.IsZero():
		return lapse.Invalidf("create alert: no raise time")
	}
	var e encoder
	raised := e.time(a.RaisedAt)
	details := e.json(a.Details, len(a.Details) == 0)
	if e.err != nil {
		return fmt.Errorf("create alert: %w", e.err)
	}
	autoRevoke := 0
	if a.Revoke {
		autoRevoke = 1
	}
	var id int64
	err := t.db.QueryRowContext(ctx, t.d.sql(`INSERT INTO alerts (rule, severity, state, user_name, resource, role, request_id,
		message, details, auto_revoke, raised_at, acked_by, acked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', NULL) RETURNING id`),
		a.Rule, a.Severity, lapse.AlertOpen, a.User, a.Resource, a.Role, a.RequestID, a.Message, details, autoRevoke, raised).Scan(&id)
	if err != nil {
		return fmt.Errorf("create alert: %w", err)
	}
	a.ID, a.State, a.AckedBy, a.AckedAt = id, lapse.AlertOpen, "", time.Time{}
	return nil
}

// AckAlert marks the open alert with id acknowledged and returns it.
func (t *tx) AckAlert(ctx context.Context, id int64, by string, at time.Time) (lapse.Alert, error) {
	if by == "" {
		return lapse.Alert{}, lapse.Invalidf("acknowledge alert %d: nobody named", id)
	}
	var e encoder
	when := e.time(at)
	if e.err != nil || when == nil {
		return lapse.Alert{}, lapse.Invalidf("acknowledge alert %d: no valid time", id)
	}
	a, err := scanAlert(t.db.QueryRowContext(ctx, t.d.sql(`SELECT `+alertColumns+` FROM alerts WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return lapse.Alert{}, lapse.NotFoundf("alert %d not found", id)
	}
	if err != nil {
		return lapse.Alert{}, fmt.Errorf("acknowledge alert %d: %w", id, err)
	}
	if a.State != lapse.AlertOpen {
		return lapse.Alert{}, lapse.Conflictf("alert %d was already acknowledged by %s", id, a.AckedBy)
	}
	if _, err := t.db.ExecContext(ctx, t.d.sql(`UPDATE alerts SET state = ?, acked_by = ?, acked_at = ? WHERE id = ? AND state = ?`),
		lapse.AlertAcknowledged, by, when, id, lapse.AlertOpen); err != nil {
		return lapse.Alert{}, fmt.Errorf("acknowledge alert %d: %w", id, err)
	}
	a.State, a.AckedBy, a.AckedAt = lapse.AlertAcknowledged, by, decodeTime(sql.NullInt64{Int64: when.(int64), Valid: true})
	return a, nil
}

// SetSinkCursor records that sink has received every audit event up to
// seq. Moving a cursor backwards is an error matching [lapse.ErrConflict].
func (t *tx) SetSinkCursor(ctx context.Context, sink string, seq int64) error {
	if sink == "" || seq < 0 {
		return lapse.Invalidf("set sink cursor: want a sink name and a sequence number of 0 or more")
	}
	cur, err := t.SinkCursor(ctx, sink)
	if err != nil {
		return err
	}
	if seq < cur {
		return lapse.Conflictf("sink %s has received up to %d; refusing to move back to %d", sink, cur, seq)
	}
	_, err = t.db.ExecContext(ctx, t.d.sql(`INSERT INTO sink_cursors (sink, seq, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (sink) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at`),
		sink, seq, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("set sink cursor %s: %w", sink, err)
	}
	return nil
}
