package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/lapse-access/lapse"
)

// appendAuditSQL appends audit records inside PostgreSQL under the audit
// tree's row lock (migration 00014): one array per column, and the
// chain hash's tail of each record.
const appendAuditSQL = `SELECT first_seq, prev_hash, hashes FROM lapse_audit_append(
	$1::bytea[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
	$7::text[], $8::text[], $9::text[], $10::text[], $11::bytea[])`

// rollbackTimeout bounds the rollback of a transaction whose context has
// ended.
const rollbackTimeout = 5 * time.Second

// sharedTx runs fn in a write transaction of a store that several servers
// share (PostgreSQL). The store begins and ends the transaction itself on
// one connection of the pool, so that the audit records it appended are
// written, the tree's row locked and updated, and the transaction
// committed in a single round trip: the row lock that serializes every
// appending transaction of every server is held only while the database
// works, never while it waits for this process.
func (s *Store) sharedTx(ctx context.Context, fn func(ctx context.Context, tx lapse.Tx) error) error {
	conn, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer conn.Close()
	t := &tx{
		reader: reader{d: s.d, q: s.q},
		s:      s,
		db:     &txQuerier{q: conn},
		conn:   conn,
	}
	t.reader.db = t.db
	committed := false
	defer func() {
		if !committed { // fn failed or panicked, or the commit failed
			s.rollback(ctx, conn)
		}
	}()
	if err := fn(ctx, t); err != nil {
		return s.conflictOr(err)
	}
	if err := t.commitShared(ctx); err != nil {
		return s.conflictOr(err)
	}
	committed = true
	t.committed()
	return nil
}

// begin takes a connection of the pool and begins a transaction on it. A
// connection found broken (the database restarted) is closed and another
// tried, as database/sql does for its own transactions.
func (s *Store) begin(ctx context.Context) (*sql.Conn, error) {
	for attempt := 0; ; attempt++ {
		conn, err := s.wdb.Conn(ctx)
		if err != nil {
			return nil, err
		}
		_, err = conn.ExecContext(ctx, "begin")
		if err == nil {
			return conn, nil
		}
		s.discardUnlessIdle(conn)
		_ = conn.Close()
		if !errors.Is(err, driver.ErrBadConn) || attempt >= beginRetries {
			return nil, err
		}
	}
}

// beginRetries is how many broken connections begin replaces before it
// gives up: more than a pool holds.
const beginRetries = 64

// rollback ends conn's transaction, if one is open, even when ctx has
// ended; a connection it cannot bring back to idle is closed instead of
// being returned to the pool.
func (s *Store) rollback(ctx context.Context, conn connRaw) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	_ = conn.Raw(func(dc any) error {
		pc, ok := pgxConn(dc)
		if !ok || pc.IsClosed() {
			return driver.ErrBadConn
		}
		if pc.PgConn().TxStatus() == 'I' {
			return nil
		}
		if _, err := pc.Exec(ctx, "rollback"); err != nil || pc.PgConn().TxStatus() != 'I' {
			return driver.ErrBadConn
		}
		return nil
	})
}

// discardUnlessIdle closes conn's connection unless it is idle, outside
// any transaction.
func (s *Store) discardUnlessIdle(conn connRaw) {
	_ = conn.Raw(func(dc any) error {
		pc, ok := pgxConn(dc)
		if !ok || pc.IsClosed() || pc.PgConn().TxStatus() != 'I' {
			return driver.ErrBadConn
		}
		return nil
	})
}

// pgxConn returns the pgx connection under a database/sql one.
func pgxConn(dc any) (*pgx.Conn, bool) {
	c, ok := dc.(*stdlib.Conn)
	if !ok {
		return nil, false
	}
	return c.Conn(), true
}

// errNotPgx reports a pool whose connections are not pgx's.
var errNotPgx = errors.New("the store's connections are not pgx connections")

// connRaw is the part of *sql.Conn that reaches the driver's connection.
type connRaw interface {
	Raw(f func(driverConn any) error) error
}

// commitShared appends the deferred audit records and commits, both in
// one round trip.
func (t *tx) commitShared(ctx context.Context) error {
	return t.conn.Raw(func(dc any) error {
		pc, ok := pgxConn(dc)
		if !ok {
			return errNotPgx
		}
		if len(t.pending) == 0 {
			tag, err := pc.Exec(ctx, "commit")
			if err != nil {
				return fmt.Errorf("commit: %w", err)
			}
			if tag.String() != "COMMIT" {
				return errors.New("commit: the transaction was rolled back")
			}
			return nil
		}
		b := &pgx.Batch{}
		args, err := appendArgs(t.pending)
		if err != nil {
			return fmt.Errorf("append audit: %w", err)
		}
		b.Queue(appendAuditSQL, args...)
		b.Queue("commit")
		br := pc.SendBatch(ctx, b)
		stored, aerr := scanAppended(br.QueryRow(), t.pending)
		tag, cerr := br.Exec()
		if err := errors.Join(br.Close(), aerr); err != nil {
			return fmt.Errorf("append audit: %w", err)
		}
		if cerr != nil {
			return fmt.Errorf("commit: %w", cerr)
		}
		if tag.String() != "COMMIT" {
			return errors.New("commit: the transaction was rolled back")
		}
		t.pending = nil
		t.events = append(t.events, stored...)
		return nil
	})
}

// flushShared appends the deferred audit records without committing, for
// a transaction that goes on to read the log.
func (t *tx) flushShared(ctx context.Context) error {
	args, err := appendArgs(t.pending)
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	var stored []lapse.AuditEvent
	err = t.conn.Raw(func(dc any) error {
		pc, ok := pgxConn(dc)
		if !ok {
			return errNotPgx
		}
		var err error
		stored, err = scanAppended(pc.QueryRow(ctx, appendAuditSQL, args...), t.pending)
		return err
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	t.pending = nil
	// The tree this transaction read, if any, is behind now.
	t.tree = nil
	t.events = append(t.events, stored...)
	return nil
}

// appendArgs returns the arguments of appendAuditSQL for evs.
func appendArgs(evs []lapse.AuditEvent) ([]any, error) {
	n := len(evs)
	var (
		tails                 = make([][]byte, n)
		times                 = make([]pgtype.Int8, n)
		types, actors, reqIDs = make([]string, n), make([]string, n), make([]string, n)
		users, resources      = make([]string, n), make([]string, n)
		roles, froms, tos     = make([]string, n), make([]string, n), make([]string, n)
		datas                 = make([][]byte, n)
	)
	for i := range evs {
		ev := &evs[i]
		var e encoder
		if at, ok := e.time(ev.Time).(int64); ok {
			times[i] = pgtype.Int8{Int64: at, Valid: true}
		}
		if e.err != nil {
			return nil, fmt.Errorf("audit event: %w", e.err)
		}
		tails[i] = ev.AppendHashTail(nil)
		types[i], actors[i], reqIDs[i] = ev.Type, ev.Actor, ev.RequestID
		users[i], resources[i], roles[i] = ev.User, ev.Resource, ev.Role
		froms[i], tos[i] = string(ev.From), string(ev.To)
		if len(ev.Data) > 0 {
			datas[i] = ev.Data
		}
	}
	return []any{tails, times, types, actors, reqIDs, users, resources, roles, froms, tos, datas}, nil
}

// scanAppended reads what appendAuditSQL returns and gives evs their
// sequence numbers and hashes, as stored.
func scanAppended(row pgx.Row, evs []lapse.AuditEvent) ([]lapse.AuditEvent, error) {
	var (
		first  int64
		prev   string
		hashes []string
	)
	if err := row.Scan(&first, &prev, &hashes); err != nil {
		return nil, err
	}
	if len(hashes) != len(evs) {
		return nil, fmt.Errorf("%d records appended, %d hashes returned", len(evs), len(hashes))
	}
	out := make([]lapse.AuditEvent, len(evs))
	for i, ev := range evs {
		ev.Seq, ev.PrevHash, ev.Hash = first+int64(i), prev, hashes[i]
		prev = ev.Hash
		out[i] = ev
	}
	return out, nil
}
