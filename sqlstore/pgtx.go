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
	c := &sharedConn{s: s}
	t := &tx{
		reader: reader{d: s.d, q: s.q},
		s:      s,
		db:     &txQuerier{q: c},
		conn:   c,
	}
	t.reader.db = t.db
	committed := false
	defer c.close() // fn panicked
	err := func() error {
		defer func() {
			if !committed { // fn failed or panicked, or the commit failed
				s.rollback(ctx, c)
			}
		}()
		if err := fn(ctx, t); err != nil {
			if c.err != nil && !errors.Is(err, c.err) {
				// A read failed because the transaction could not go on:
				// its error says why.
				err = c.err
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
	c.close()
	if err != nil {
		t.restoreVersions()
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
// statement, and writes queued with [sharedConn.queue] go with the next
// statement or the commit. A connection found broken before anything
// began (the database restarted) is closed and another taken, as
// database/sql does for its own transactions.
type sharedConn struct {
	s      *Store
	conn   *sql.Conn
	begun  bool
	queued []queuedWrite
	// err is why the transaction cannot go on; nothing runs after it.
	err error
	// commits is set while a batch holds COMMIT: one lost on the way may
	// have committed, so it is never sent again on another connection.
	commits bool
}

// queuedWrite is a write whose failure the database reports itself, by
// an error that [checkedErr] maps.
type queuedWrite struct {
	query string
	args  []any
}

// Raw runs f on the driver's connection, if the transaction has taken
// one.
func (c *sharedConn) Raw(f func(driverConn any) error) error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Raw(f)
}

// acquire takes a connection of the pool for the transaction, at its
// first statement.
func (c *sharedConn) acquire(ctx context.Context) error {
	if c.conn != nil {
		return nil
	}
	conn, err := c.s.wdb.Conn(ctx)
	if err != nil {
		c.err = fmt.Errorf("begin: %w", err)
		return c.err
	}
	c.conn = conn
	return nil
}

// close gives the connection back to the pool, if the transaction holds
// one.
func (c *sharedConn) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

// queue sends query with the transaction's next statement or its commit.
func (c *sharedConn) queue(query string, args ...any) {
	c.queued = append(c.queued, queuedWrite{query: query, args: args})
}

// replace closes a broken connection and takes another of the pool.
func (c *sharedConn) replace(ctx context.Context) error {
	c.s.discardUnlessIdle(c.conn)
	c.close()
	return c.acquire(ctx)
}

// send runs, in one round trip, BEGIN unless the transaction has begun,
// the queued writes, and what add queues; read reads the results of
// add's. A failure ends the transaction: every later call returns it.
func (c *sharedConn) send(ctx context.Context, add func(b *pgx.Batch), read func(br pgx.BatchResults) error) error {
	if c.err != nil {
		return c.err
	}
	if err := c.acquire(ctx); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		sentBegin := false
		err := c.conn.Raw(func(dc any) error {
			pc, ok := pgxConn(dc)
			if !ok {
				return errNotPgx
			}
			b := &pgx.Batch{}
			if !c.begun {
				b.Queue("begin")
				sentBegin = true
			}
			for _, w := range c.queued {
				b.Queue(w.query, w.args...)
			}
			if add != nil {
				add(b)
			}
			br := pc.SendBatch(ctx, b)
			err := func() error {
				if sentBegin {
					if _, err := br.Exec(); err != nil {
						return err
					}
					c.begun = true
				}
				for range c.queued {
					if _, err := br.Exec(); err != nil {
						return checkedErr(err)
					}
				}
				c.queued = nil
				if read != nil {
					return read(br)
				}
				return nil
			}()
			if cerr := br.Close(); err == nil {
				err = cerr
			}
			return err
		})
		if err == nil {
			return nil
		}
		if c.begun || !sentBegin || c.commits || !pgconn.SafeToRetry(err) || attempt >= beginRetries {
			c.err = err
			return err
		}
		if err := c.replace(ctx); err != nil {
			c.err = err
			return err
		}
	}
}

// checkedErr turns the errors by which the database refuses a queued
// write (migration 00017) into the store's.
func checkedErr(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case "LP409":
		return &refusedError{lapse.Conflictf("%s", pe.Message), pe}
	case "LP404":
		return &refusedError{lapse.NotFoundf("%s", pe.Message), pe}
	}
	return err
}

// refusedError is the store's error for a write the database refused,
// which still matches the database's error.
type refusedError struct {
	err error
	pe  *pgconn.PgError
}

func (e *refusedError) Error() string   { return e.err.Error() }
func (e *refusedError) Unwrap() []error { return []error{e.err, e.pe} }

// errTxRolledBack is the error of a COMMIT that the database answered
// with ROLLBACK.
var errTxRolledBack = errors.New("commit: the transaction was rolled back")

// begin begins the transaction, and sends the queued writes, unless there
// is nothing to do.
func (c *sharedConn) begin(ctx context.Context) error {
	if c.begun && len(c.queued) == 0 {
		return c.err
	}
	return c.send(ctx, nil, nil)
}

// ExecContext runs query in the transaction, in one round trip with BEGIN
// and the queued writes if there are any.
func (c *sharedConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := c.send(ctx, func(b *pgx.Batch) { b.Queue(query, args...) }, func(br pgx.BatchResults) error {
		tag, err := br.Exec()
		res = driver.RowsAffected(tag.RowsAffected())
		return err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// QueryContext begins the transaction and sends the queued writes, if it
// must, and runs query.
func (c *sharedConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if err := c.begin(ctx); err != nil {
		return nil, err
	}
	return c.conn.QueryContext(ctx, query, args...)
}

// QueryRowContext begins the transaction and sends the queued writes, if
// it must, and runs query. If that fails, the row's Scan fails (with the
// context's cancellation; the transaction reports why).
func (c *sharedConn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if err := c.begin(ctx); err != nil {
		cctx, cancel := context.WithCancelCause(ctx)
		cancel(err)
		if c.conn == nil {
			return c.s.wdb.QueryRowContext(cctx, query, args...)
		}
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

// commitShared sends the queued writes, leaves the deferred audit records
// in audit_pending and commits, all in one round trip, with BEGIN if
// nothing has begun the transaction.
func (t *tx) commitShared(ctx context.Context) error {
	c := t.conn
	if c.err != nil {
		return c.err
	}
	if !c.begun && len(c.queued) == 0 && len(t.pending) == 0 {
		return nil // nothing was written
	}
	if c.conn == nil {
		// Nothing was sent: committed with the transactions committing
		// at the same moment (see [grouper]).
		ids, since, err := t.s.grouper.commit(ctx, c.queued, t.pending)
		if err != nil {
			c.err = err
			return err
		}
		c.queued = nil
		if len(t.pending) > 0 {
			t.unsealed, t.unsealedID, t.since = t.pending, ids, since
			t.pending = nil
		}
		return nil
	}
	var args []any
	if len(t.pending) > 0 {
		var err error
		if args, err = appendArgs(t.pending); err != nil {
			return fmt.Errorf("append audit: %w", err)
		}
	}
	since := t.s.sealer.head.Load()
	ids, committed, err := c.commit(ctx, args, len(t.pending))
	if err != nil && !committed {
		// Once the database has said COMMIT, losing the connection after
		// is not the transaction's failure.
		return err
	}
	if args != nil {
		t.unsealed, t.unsealedID, t.since = t.pending, ids, since
		t.pending = nil
	}
	return nil
}

// commit sends the queued writes, the insert of n audit records into
// audit_pending (args, nil for none) and COMMIT in one round trip, with
// BEGIN if the transaction has not begun, and returns the records'
// pending ids and whether the database said COMMIT.
func (c *sharedConn) commit(ctx context.Context, args []any, n int) (ids []int64, committed bool, err error) {
	c.commits = true
	err = c.send(ctx, func(b *pgx.Batch) {
		if args != nil {
			b.Queue(insertPendingSQL, args...)
		}
		b.Queue("commit")
	}, func(br pgx.BatchResults) error {
		if args != nil {
			var err error
			if ids, err = scanPendingIDs(br, n); err != nil {
				return fmt.Errorf("append audit: %w", err)
			}
		}
		tag, err := br.Exec()
		if err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if tag.String() != "COMMIT" {
			return errTxRolledBack
		}
		committed = true
		return nil
	})
	return ids, committed, err
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
	got := map[int64]sealed{}
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
		for more := true; more; {
			if more, err = scanSealed(pc.QueryRow(ctx, sealSQL, ids, since), got); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// The records may be in the transaction: it cannot go on.
		t.conn.err = fmt.Errorf("append audit: %w", err)
		return t.conn.err
	}
	stored := place(t.pending, ids, got)
	for _, ev := range stored {
		if ev.Seq == 0 {
			t.conn.err = fmt.Errorf("append audit: record %q of request %s was not sealed", ev.Type, ev.RequestID)
			return t.conn.err
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
