package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/lapse-access/lapse"
)

// rollbackTimeout bounds the rollback of a transaction whose context has
// ended.
const rollbackTimeout = 5 * time.Second

// sharedTx runs fn in a write transaction of a store that several servers
// share (PostgreSQL). The store begins and ends the transaction itself on
// one connection of the pool, so that the audit records it appended are
// left in audit_pending and the transaction committed in a single round
// trip, without any lock that other transactions wait for. Then it waits
// for a seal that puts them in the log (see [sealer]), so that when Tx
// returns the records are in the log, numbered and chained.
func (s *Store) sharedTx(ctx context.Context, fn func(ctx context.Context, tx lapse.Tx) error) error {
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	c := &sharedConn{s: s, conn: conn}
	t := &tx{
		reader: reader{d: s.d, q: s.q},
		s:      s,
		db:     &txQuerier{q: c},
		conn:   c,
	}
	t.reader.db = t.db
	closed, committed := false, false
	defer func() {
		if !closed { // fn panicked
			_ = c.conn.Close()
		}
	}()
	err = func() error {
		defer func() {
			if !committed { // fn failed or panicked, or the commit failed
				s.rollback(ctx, c)
			}
		}()
		if err := fn(ctx, t); err != nil {
			if c.err != nil {
				return fmt.Errorf("begin: %w", c.err)
			}
			return s.conflictOr(err)
		}
		if err := t.commitShared(ctx); err != nil {
			return s.conflictOr(err)
		}
		committed = true
		return nil
	}()
	// The connection goes back to the pool before the seal.
	closed = true
	_ = c.conn.Close()
	if err != nil {
		return err
	}
	if len(t.unsealed) > 0 {
		// The transaction has committed: a failed seal leaves its records
		// pending, for the next seal of any server, and is not its error.
		got, _ := s.sealer.wait(ctx, t.unsealedID, t.since)
		t.events = append(t.events, place(t.unsealed, t.unsealedID, got)...)
	}
	t.committed()
	return nil
}

// sharedConn is the connection of a shared store's transaction. The
// transaction begins lazily: BEGIN goes in one round trip with the first
// statement when that is an Exec, else on its own before the first query
// or the commit. A
// connection found broken before anything began (the database restarted)
// is closed and another taken, as database/sql does for its own
// transactions.
type sharedConn struct {
	s     *Store
	conn  *sql.Conn
	begun bool
	// err is why the transaction could not begin; nothing runs after it.
	err error
}

// Raw runs f on the driver's connection.
func (c *sharedConn) Raw(f func(driverConn any) error) error { return c.conn.Raw(f) }

// replace closes a broken connection and takes another of the pool.
func (c *sharedConn) replace(ctx context.Context) error {
	c.s.discardUnlessIdle(c.conn)
	_ = c.conn.Close()
	conn, err := c.s.wdb.Conn(ctx)
	if err != nil {
		// Closing the old one twice is harmless; the caller closes c.conn.
		return err
	}
	c.conn = conn
	return nil
}

// begin begins the transaction unless it has begun.
func (c *sharedConn) begin(ctx context.Context) error {
	if c.begun || c.err != nil {
		return c.err
	}
	for attempt := 0; ; attempt++ {
		_, err := c.conn.ExecContext(ctx, "begin")
		if err == nil {
			c.begun = true
			return nil
		}
		if !errors.Is(err, driver.ErrBadConn) || attempt >= beginRetries {
			c.err = err
			return err
		}
		if err := c.replace(ctx); err != nil {
			c.err = err
			return err
		}
	}
}

// ExecContext runs query in the transaction, beginning it in the same
// round trip if it has not begun.
func (c *sharedConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.begun {
		return c.conn.ExecContext(ctx, query, args...)
	}
	for attempt := 0; ; attempt++ {
		var res sql.Result
		err := c.conn.Raw(func(dc any) error {
			pc, ok := pgxConn(dc)
			if !ok {
				return errNotPgx
			}
			b := &pgx.Batch{}
			b.Queue("begin")
			b.Queue(query, args...)
			br := pc.SendBatch(ctx, b)
			_, berr := br.Exec()
			c.begun = berr == nil
			tag, err := br.Exec()
			if cerr := br.Close(); err == nil {
				err = cerr
			}
			if berr != nil {
				return berr
			}
			if err != nil {
				return err
			}
			res = driver.RowsAffected(tag.RowsAffected())
			return nil
		})
		if err == nil || c.begun {
			return res, err
		}
		if !pgconn.SafeToRetry(err) || attempt >= beginRetries {
			c.err = err
			return nil, err
		}
		if err := c.replace(ctx); err != nil {
			c.err = err
			return nil, err
		}
	}
}

// QueryContext begins the transaction if it has not begun, and runs query
// in it.
func (c *sharedConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if err := c.begin(ctx); err != nil {
		return nil, err
	}
	return c.conn.QueryContext(ctx, query, args...)
}

// QueryRowContext begins the transaction if it has not begun, and runs
// query in it. If the transaction cannot begin, the row's Scan fails (with
// the context's cancellation; the transaction reports why).
func (c *sharedConn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if err := c.begin(ctx); err != nil {
		cctx, cancel := context.WithCancelCause(ctx)
		cancel(err)
		return c.conn.QueryRowContext(cctx, query, args...)
	}
	return c.conn.QueryRowContext(ctx, query, args...)
}

// beginRetries is how many broken connections a transaction replaces
// before it gives up: more than a pool holds.
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

// commitShared leaves the deferred audit records in audit_pending and
// commits, both in one round trip.
func (t *tx) commitShared(ctx context.Context) error {
	if len(t.pending) > 0 {
		if err := t.conn.begin(ctx); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
	}
	return t.conn.Raw(func(dc any) error {
		pc, ok := pgxConn(dc)
		if !ok {
			return errNotPgx
		}
		if len(t.pending) == 0 {
			if !t.conn.begun {
				return nil // nothing was written
			}
			tag, err := pc.Exec(ctx, "commit")
			if err != nil {
				return fmt.Errorf("commit: %w", err)
			}
			if tag.String() != "COMMIT" {
				return errors.New("commit: the transaction was rolled back")
			}
			return nil
		}
		args, err := appendArgs(t.pending)
		if err != nil {
			return fmt.Errorf("append audit: %w", err)
		}
		since := t.s.sealer.head.Load()
		b := &pgx.Batch{}
		b.Queue(insertPendingSQL, args...)
		b.Queue("commit")
		br := pc.SendBatch(ctx, b)
		ids, ierr := scanPendingIDs(br, len(t.pending))
		tag, cerr := br.Exec()
		if err := errors.Join(br.Close(), ierr); err != nil {
			return fmt.Errorf("append audit: %w", err)
		}
		if cerr != nil {
			return fmt.Errorf("commit: %w", cerr)
		}
		if tag.String() != "COMMIT" {
			return errors.New("commit: the transaction was rolled back")
		}
		t.unsealed, t.unsealedID, t.since = t.pending, ids, since
		t.pending = nil
		return nil
	})
}

// flushShared writes the deferred audit records into the log without
// committing, for a transaction that goes on to read the log: it leaves
// them pending and seals within the transaction, which then holds the
// audit tree's lock until it ends.
func (t *tx) flushShared(ctx context.Context) error {
	args, err := appendArgs(t.pending)
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	if err := t.conn.begin(ctx); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	since := t.s.sealer.head.Load()
	var got map[int64]sealed
	var ids []int64
	err = t.conn.Raw(func(dc any) error {
		pc, ok := pgxConn(dc)
		if !ok {
			return errNotPgx
		}
		b := &pgx.Batch{}
		b.Queue(insertPendingSQL, args...)
		br := pc.SendBatch(ctx, b)
		ids, err = scanPendingIDs(br, len(t.pending))
		if err := errors.Join(br.Close(), err); err != nil {
			return err
		}
		got, err = scanSealed(pc.QueryRow(ctx, sealSQL, ids, since))
		return err
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	stored := place(t.pending, ids, got)
	for _, ev := range stored {
		if ev.Seq == 0 {
			return fmt.Errorf("append audit: record %q of request %s was not sealed", ev.Type, ev.RequestID)
		}
	}
	t.pending = nil
	// The tree this transaction read, if any, is behind now.
	t.tree = nil
	t.events = append(t.events, stored...)
	return nil
}

// scanPendingIDs reads the ids insertPendingSQL returns for n records.
func scanPendingIDs(br pgx.BatchResults, n int) ([]int64, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, n)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(ids) != n {
		return nil, fmt.Errorf("%d records left pending, %d ids returned", n, len(ids))
	}
	// In the order of the records: ids are drawn in insert order.
	slices.Sort(ids)
	return ids, nil
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
