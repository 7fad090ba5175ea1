package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"

	"github.com/lapse-access/lapse"
)

// requestColumns are the columns of the requests table in the order that
// [scanRequest] reads and [requestValues] writes them: id, the fields, and
// version last.
const requestColumns = `id, user_name, resource, role, reason, ticket, duration, start_at, state,
	created_at, updated_at, pending_until, approvals_needed, approvals,
	activated_at, expires_at, ended_at, end_reason, ended_by, note, extension,
	ref, attempts, next_at, owner, last_error, credentials_waiting, inputs, outputs, client_ip, device, version`

// auditColumns are the columns of the audit table in the order that
// [readAudit] reads and [auditValues] writes them.
const auditColumns = `seq, time, type, actor, request_id, user_name, resource, role,
	from_state, to_state, data, prev_hash, hash`

// updateRequestSQL updates the columns the state machine changes, if the
// version is still the one read. Only those: SQLite rewrites every index on
// a column that an UPDATE sets, changed or not.
const updateRequestSQL = `UPDATE requests SET
			duration = ?, start_at = ?, state = ?, updated_at = ?, pending_until = ?,
			approvals_needed = ?, approvals = ?, activated_at = ?, expires_at = ?,
			ended_at = ?, end_reason = ?, ended_by = ?, note = ?, extension = ?, ref = ?,
			attempts = ?, next_at = ?, owner = ?, last_error = ?, credentials_waiting = ?,
			outputs = ?, version = version + 1
			WHERE id = ? AND version = ?`

// auditColumnCount is the number of [auditColumns].
const auditColumnCount = 13

// auditInsertChunk is how many audit rows one INSERT writes at most. Batches
// are split into powers of two up to it, whose statements are prepared.
const auditInsertChunk = 64

// queries holds the fixed queries in the dialect's placeholders. Queries that
// depend on a filter are built when they run.
type queries struct {
	getRequest    string
	insertRequest string
	// insertRequestChecked is insertRequest that the database checks
	// itself (migration 00017), then its id again; only where the store
	// queues writes.
	insertRequestChecked string
	// updateRequestChecked and updateEndingChecked are updateRequest and
	// updateEnding that the database checks itself, then the id and the
	// version again; only where the store queues writes.
	updateRequestChecked string
	updateEndingChecked  string
	updateRequest        string
	// updateEnding is updateRequest that also deletes the request's sealed
	// credentials if it updated the request, and returns how many it
	// updated, where the dialect can.
	updateEnding  string
	activeGrant   string
	nextDue       string
	dueRequests   string
	releaseClaims string
	requestExists string
	updateTree    string
	insertAudit   string
	putSecret     string
	takeSecret    string
	deleteSecret  string

	// auditRows[n] inserts n audit rows; built on first use.
	auditRowsMu sync.Mutex
	auditRows   map[int]string
	dialect     *dialect
}

// insertAuditRows returns the statement that inserts n audit rows.
func (q *queries) insertAuditRows(n int) string {
	if n == 1 {
		return q.insertAudit
	}
	q.auditRowsMu.Lock()
	defer q.auditRowsMu.Unlock()
	if s, ok := q.auditRows[n]; ok {
		return s
	}
	rows := make([]string, n)
	for i := range rows {
		rows[i] = "(" + placeholders(auditColumnCount) + ")"
	}
	s := q.dialect.sql(`INSERT INTO audit (` + auditColumns + `) VALUES ` + strings.Join(rows, ", "))
	if q.auditRows == nil {
		q.auditRows = map[int]string{}
	}
	q.auditRows[n] = s
	return s
}

func newQueries(d *dialect) *queries {
	var terminal []string
	for _, s := range lapse.States {
		if s.Terminal() {
			terminal = append(terminal, "'"+string(s)+"'")
		}
	}
	return &queries{
		dialect:    d,
		getRequest: d.sql(`SELECT ` + requestColumns + ` FROM requests WHERE id = ?`),
		insertRequest: d.sql(`INSERT INTO requests (` + requestColumns + `)
			VALUES (` + placeholders(32) + `) ON CONFLICT (id) DO NOTHING`),
		updateRequest: d.sql(updateRequestSQL),
		insertRequestChecked: d.sql(`WITH created AS (INSERT INTO requests (` + requestColumns + `)
			VALUES (` + placeholders(32) + `) ON CONFLICT (id) DO NOTHING RETURNING 1)
			SELECT lapse_request_created(count(*), ?) FROM created`),
		updateRequestChecked: d.sql(`WITH updated AS (` + updateRequestSQL + ` RETURNING 1)
			SELECT lapse_request_updated(count(*), ?, ?) FROM updated`),
		updateEndingChecked: d.sql(`WITH updated AS (` + updateRequestSQL + ` RETURNING id),
			gone AS (DELETE FROM secrets WHERE request_id IN (SELECT id FROM updated))
			SELECT lapse_request_updated(count(*), ?, ?) FROM updated`),
		updateEnding: updateEnding(d, updateRequestSQL),
		// Answered from the requests_active index alone.
		activeGrant: d.sql(`SELECT id, expires_at FROM requests
			WHERE user_name = ? AND resource = ? AND role = ? AND state = 'active' AND expires_at > ?
			ORDER BY expires_at DESC, id LIMIT 1`),
		nextDue: d.sql(`SELECT MIN(next_at) FROM requests WHERE next_at IS NOT NULL`),
		dueRequests: d.sql(`SELECT ` + requestColumns + ` FROM requests
			WHERE next_at IS NOT NULL AND next_at <= ?
			ORDER BY next_at, id LIMIT ?` + d.lockDue),
		releaseClaims: d.sql(`UPDATE requests SET next_at = ?, owner = '', updated_at = ?, version = version + 1
			WHERE owner = ? AND owner <> '' AND state NOT IN (` + strings.Join(terminal, ", ") + `)`),
		updateTree: d.sql(updateTree),
		insertAudit: d.sql(`INSERT INTO audit (` + auditColumns + `)
			VALUES (` + placeholders(auditColumnCount) + `)`),
		requestExists: d.sql(`SELECT 1 FROM requests WHERE id = ?`),
		putSecret: d.sql(`INSERT INTO secrets (request_id, sealed) VALUES (?, ?)
			ON CONFLICT (request_id) DO UPDATE SET sealed = excluded.sealed`),
		takeSecret:   d.sql(`DELETE FROM secrets WHERE request_id = ? RETURNING sealed`),
		deleteSecret: d.sql(`DELETE FROM secrets WHERE request_id = ?`),
	}
}

// updateEnding returns update followed, if it updated the request, by the
// deletion of the request's sealed credentials, in one statement that
// returns how many requests it updated; or "" where the dialect cannot.
func updateEnding(d *dialect, update string) string {
	if !d.deleteInUpdate {
		return ""
	}
	return d.sql(`WITH updated AS (` + update + ` RETURNING id),
		gone AS (DELETE FROM secrets WHERE request_id IN (SELECT id FROM updated))
		SELECT count(*) FROM updated`)
}

// prepared lists the queries that write transactions prepare once and reuse:
// those the scheduler runs hundreds of times per transaction.
func (q *queries) prepared() []string {
	out := []string{q.getRequest, q.insertRequest, q.updateRequest, q.dueRequests, q.updateTree, q.deleteSecret}
	if q.updateEnding != "" {
		out = append(out, q.updateEnding)
	}
	for n := 1; n <= auditInsertChunk; n *= 2 {
		out = append(out, q.insertAuditRows(n))
	}
	return out
}

// placeholders returns n comma-separated ? placeholders.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// poolQuerier runs queries on the read pool through statements it prepares
// on first use, so that a hot read is not parsed again every time.
type poolQuerier struct {
	db    *sql.DB
	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

// maxPoolStmts bounds the read pool's statement cache; queries built from
// filters have a bounded number of shapes, so it is rarely reached.
const maxPoolStmts = 256

func (q *poolQuerier) stmt(ctx context.Context, query string) *sql.Stmt {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s, ok := q.stmts[query]; ok {
		return s
	}
	if len(q.stmts) >= maxPoolStmts {
		return nil
	}
	s, err := q.db.PrepareContext(ctx, query)
	if err != nil {
		return nil // the unprepared query reports the error
	}
	if q.stmts == nil {
		q.stmts = make(map[string]*sql.Stmt)
	}
	q.stmts[query] = s
	return s
}

func (q *poolQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return q.db.ExecContext(ctx, query, args...)
}

func (q *poolQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := q.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return q.db.QueryContext(ctx, query, args...)
}

func (q *poolQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := q.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return q.db.QueryRowContext(ctx, query, args...)
}

// close closes the prepared statements.
func (q *poolQuerier) close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var err error
	for _, s := range q.stmts {
		err = errors.Join(err, s.Close())
	}
	q.stmts = nil
	return err
}

// querier runs queries: the read pool, or a write transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// txQuerier runs queries in a write transaction: on the *sql.Tx, using the
// store's prepared statement for a query where there is one, or on the
// connection of a transaction the store began itself (where the driver
// caches the statements).
type txQuerier struct {
	q        querier
	tx       *sql.Tx              // nil where the store began the transaction
	prepared map[string]*sql.Stmt // the store's; read-only

	mu    sync.Mutex
	stmts map[string]*sql.Stmt // prepared ones bound to tx
}

// stmt returns the statement for query bound to the transaction, or nil
// when the query is not prepared.
func (q *txQuerier) stmt(ctx context.Context, query string) *sql.Stmt {
	p, ok := q.prepared[query]
	if !ok || q.tx == nil {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	s, ok := q.stmts[query]
	if !ok {
		s = q.tx.StmtContext(ctx, p)
		if q.stmts == nil {
			q.stmts = make(map[string]*sql.Stmt)
		}
		q.stmts[query] = s
	}
	return s
}

func (q *txQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := q.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return q.q.ExecContext(ctx, query, args...)
}

func (q *txQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := q.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return q.q.QueryContext(ctx, query, args...)
}

func (q *txQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := q.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return q.q.QueryRowContext(ctx, query, args...)
}
