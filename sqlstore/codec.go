package sqlstore

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/lapse-access/lapse"
)

// Times are stored as integer Unix nanoseconds, which keeps them exact (the
// audit hash covers nanoseconds) and orderable; a zero time is NULL.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// encoder turns field values into column values, keeping the first error.
type encoder struct{ err error }

func (e *encoder) time(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		if e.err == nil {
			e.err = lapse.Invalidf("time %s is outside the range the store can hold", t.Format(time.RFC3339))
		}
		return nil
	}
	return t.UnixNano()
}

// json encodes v as JSON text, or NULL when empty is true.
func (e *encoder) json(v any, empty bool) any {
	if empty {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		if e.err == nil {
			e.err = fmt.Errorf("encode %T: %w", v, err)
		}
		return nil
	}
	return string(b)
}

func decodeTime(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// requestValues returns the column values of r from user_name to
// credentials_waiting: every column but id and version.
func requestValues(r *lapse.Request) ([]any, error) {
	var e encoder
	v := []any{
		r.User, r.Resource, r.Role, r.Reason, r.Ticket, int64(r.Duration),
		e.time(r.StartAt), string(r.State), e.time(r.CreatedAt), e.time(r.UpdatedAt),
		e.time(r.PendingUntil), r.ApprovalsNeeded, e.json(r.Approvals, len(r.Approvals) == 0),
		e.time(r.ActivatedAt), e.time(r.ExpiresAt), e.time(r.EndedAt),
		string(r.EndReason), r.EndedBy, r.Note, e.json(r.Extension, r.Extension == nil),
		r.Ref, r.Attempts, e.time(r.NextAt), r.Owner, r.LastError, r.CredentialsWaiting,
		e.json(r.Inputs, len(r.Inputs) == 0), e.json(r.Outputs, len(r.Outputs) == 0), r.ClientIP, r.Device,
	}
	if e.err != nil {
		return nil, fmt.Errorf("request %s: %w", r.ID, e.err)
	}
	return v, nil
}

// mutableValues returns the values of the columns that UpdateRequest sets,
// in its order: the fields the state machine changes.
func mutableValues(r *lapse.Request) ([]any, error) {
	var e encoder
	v := []any{
		int64(r.Duration), e.time(r.StartAt), string(r.State), e.time(r.UpdatedAt),
		e.time(r.PendingUntil), r.ApprovalsNeeded, e.json(r.Approvals, len(r.Approvals) == 0),
		e.time(r.ActivatedAt), e.time(r.ExpiresAt), e.time(r.EndedAt),
		string(r.EndReason), r.EndedBy, r.Note, e.json(r.Extension, r.Extension == nil),
		r.Ref, r.Attempts, e.time(r.NextAt), r.Owner, r.LastError, r.CredentialsWaiting,
		e.json(r.Outputs, len(r.Outputs) == 0),
	}
	if e.err != nil {
		return nil, fmt.Errorf("request %s: %w", r.ID, e.err)
	}
	return v, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanRequest reads a row of [requestColumns].
func scanRequest(sc scanner) (lapse.Request, error) {
	var (
		r                                           lapse.Request
		duration                                    int64
		state, endReason                            string
		startAt, createdAt, updatedAt, pendingUntil sql.NullInt64
		activatedAt, expiresAt, endedAt, nextAt     sql.NullInt64
		approvals, extension, inputs, outputs       sql.NullString
	)
	err := sc.Scan(&r.ID, &r.User, &r.Resource, &r.Role, &r.Reason, &r.Ticket, &duration,
		&startAt, &state, &createdAt, &updatedAt, &pendingUntil, &r.ApprovalsNeeded, &approvals,
		&activatedAt, &expiresAt, &endedAt, &endReason, &r.EndedBy, &r.Note, &extension,
		&r.Ref, &r.Attempts, &nextAt, &r.Owner, &r.LastError, &r.CredentialsWaiting, &inputs, &outputs, &r.ClientIP, &r.Device, &r.Version)
	if err != nil {
		return lapse.Request{}, err
	}
	r.Duration = time.Duration(duration)
	r.State, r.EndReason = lapse.State(state), lapse.EndReason(endReason)
	r.StartAt, r.CreatedAt, r.UpdatedAt = decodeTime(startAt), decodeTime(createdAt), decodeTime(updatedAt)
	r.PendingUntil, r.ActivatedAt = decodeTime(pendingUntil), decodeTime(activatedAt)
	r.ExpiresAt, r.EndedAt, r.NextAt = decodeTime(expiresAt), decodeTime(endedAt), decodeTime(nextAt)
	if approvals.Valid {
		if err := json.Unmarshal([]byte(approvals.String), &r.Approvals); err != nil {
			return lapse.Request{}, fmt.Errorf("decode approvals of request %s: %w", r.ID, err)
		}
	}
	if inputs.Valid {
		if err := json.Unmarshal([]byte(inputs.String), &r.Inputs); err != nil {
			return lapse.Request{}, fmt.Errorf("decode inputs of request %s: %w", r.ID, err)
		}
	}
	if outputs.Valid {
		if err := json.Unmarshal([]byte(outputs.String), &r.Outputs); err != nil {
			return lapse.Request{}, fmt.Errorf("decode outputs of request %s: %w", r.ID, err)
		}
	}
	if extension.Valid {
		r.Extension = new(lapse.Extension)
		if err := json.Unmarshal([]byte(extension.String), r.Extension); err != nil {
			return lapse.Request{}, fmt.Errorf("decode extension of request %s: %w", r.ID, err)
		}
	}
	return r, nil
}

// auditValues returns the column values of ev in [auditColumns] order.
func auditValues(ev *lapse.AuditEvent) ([]any, error) {
	var e encoder
	var data any
	if len(ev.Data) > 0 {
		data = []byte(ev.Data)
	}
	v := []any{
		ev.Seq, e.time(ev.Time), ev.Type, ev.Actor, ev.RequestID, ev.User, ev.Resource, ev.Role,
		string(ev.From), string(ev.To), data, ev.PrevHash, ev.Hash,
	}
	if e.err != nil {
		return nil, fmt.Errorf("audit event: %w", e.err)
	}
	return v, nil
}

// Audit rows are read in four columns: seq, time, data, and the ten text
// columns joined into one, in [auditColumns] order, with auditSep between
// them. The driver's work and the allocations grow with the number of
// columns; this halves the CPU time of reading the log. A text with
// exactly nine separators splits back into the ten columns only one way,
// because no column has a separator in it; a row with more (a column that
// has one) is read again by [readAuditRow].
const (
	auditSep        = "\x1f"
	auditReadFields = 10
	// auditReadColumns takes auditSep as its first argument.
	auditReadColumns = `seq, time, data, concat_ws(CAST(? AS TEXT), type, actor, request_id, user_name,
	resource, role, from_state, to_state, prev_hash, hash)`
	selectAuditRow = `SELECT ` + auditColumns + ` FROM audit WHERE seq = ?`
)

// readAudit appends the events of rows, rows of [auditReadColumns], to
// out. It returns the indexes in out of the events whose text did not
// split into its columns, for the caller to read with [readAuditRow].
//
// It reuses the scan destinations from row to row and copies the data of
// all the rows into one growing buffer: an event costs the one string the
// driver returns, which its text fields share.
func readAudit(rows *sql.Rows, out []lapse.AuditEvent) ([]lapse.AuditEvent, []int, error) {
	var (
		ev     lapse.AuditEvent
		t      sql.NullInt64
		data   sql.RawBytes
		text   string
		buf    []byte
		f      [auditReadFields]string
		reread []int
	)
	dest := []any{&ev.Seq, &t, &data, &text}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, err
		}
		if strings.Count(text, auditSep) != auditReadFields-1 {
			reread = append(reread, len(out))
			out = append(out, lapse.AuditEvent{Seq: ev.Seq})
			continue
		}
		rest := text
		for i := range auditReadFields - 1 {
			f[i], rest, _ = strings.Cut(rest, auditSep)
		}
		f[auditReadFields-1] = rest
		ev.Type, ev.Actor, ev.RequestID, ev.User, ev.Resource = f[0], f[1], f[2], f[3], f[4]
		ev.Role, ev.From, ev.To, ev.PrevHash, ev.Hash = f[5], lapse.State(f[6]), lapse.State(f[7]), f[8], f[9]
		ev.Time = decodeTime(t)
		ev.Data = nil
		if len(data) > 0 {
			if cap(buf)-len(buf) < len(data) {
				buf = make([]byte, 0, max(len(data), 64<<10))
			}
			buf = append(buf, data...)
			ev.Data = buf[len(buf)-len(data) : len(buf) : len(buf)]
		}
		out = append(out, ev)
	}
	return out, reread, rows.Err()
}

// readAuditRow reads a row of [auditColumns].
func readAuditRow(row *sql.Row) (lapse.AuditEvent, error) {
	var (
		ev       lapse.AuditEvent
		t        sql.NullInt64
		from, to string
		data     []byte
	)
	err := row.Scan(&ev.Seq, &t, &ev.Type, &ev.Actor, &ev.RequestID, &ev.User, &ev.Resource,
		&ev.Role, &from, &to, &data, &ev.PrevHash, &ev.Hash)
	if err != nil {
		return lapse.AuditEvent{}, err
	}
	ev.Time = decodeTime(t)
	ev.From, ev.To = lapse.State(from), lapse.State(to)
	if len(data) > 0 {
		ev.Data = data
	}
	return ev, nil
}
