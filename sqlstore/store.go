package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-access/lapse"
	"github.com/pressly/goose/v3"
)

// Store is a [lapse.Store] on a SQL database. It is safe for concurrent use.
// Reads outside a transaction go to a pool of read connections; write
// transactions are serialized where the database allows one writer.
type Store struct {
	reader

	wdb  *sql.DB // write transactions
	rdb  *sql.DB // reads outside transactions; may be wdb
	pool *poolQuerier
	// stmts are the prepared statements of the write pool, by query.
	stmts map[string]*sql.Stmt

	// writer, for single-writer dialects, holds a token while a write
	// transaction runs: from before it begins until after head is updated.
	writer chan struct{}
	// head is the audit log's tree as of the last committed transaction,
	// valid when headOK. Only used by single-writer dialects, while holding
	// writer.
	head   lapse.AuditTree
	headOK bool
	// pgConfig is the connection config of a PostgreSQL store, for
	// connections outside the pool (see [Store.Listener]).
	pgConfig *pgx.ConnConfig
	// active answers ActiveGrant from memory for single-writer dialects.
	active *activeIndex
	// sealer seals the audit records of a shared store's transactions;
	// grouper commits its write-only transactions together.
	sealer  *sealer
	grouper *grouper

	// OnCommit, if set, is called after each committed transaction that
	// appended audit events, with those events as stored. It runs before
	// the next write transaction may start, so it must be quick; set it
	// before the store is used.
	OnCommit func(evs []lapse.AuditEvent)
}

var _ lapse.Store = (*Store)(nil)

// open migrates wdb to the dialect's current schema and returns a Store on
// it. It takes ownership of wdb and rdb only when it succeeds.
func open(ctx context.Context, d *dialect, wdb, rdb *sql.DB) (*Store, error) {
	if err := migrate(ctx, d, wdb); err != nil {
		return nil, err
	}
	q := newQueries(d)
	pool := &poolQuerier{db: rdb}
	s := &Store{
		reader: reader{d: d, q: q, db: pool},
		wdb:    wdb,
		rdb:    rdb,
		pool:   pool,
		stmts:  make(map[string]*sql.Stmt),
	}
	if err := s.initTree(ctx); err != nil {
		return nil, err
	}
	if d.singleWriter {
		s.writer = make(chan struct{}, 1)
		ix, err := loadActiveIndex(ctx, wdb)
		if err != nil {
			return nil, err
		}
		s.active = ix
	}
	if !d.singleWriter {
		// The driver prepares and caches statements per connection, and
		// write transactions run on a connection, not a *sql.Tx (see
		// [Store.sharedTx]).
		return s, nil
	}
	for _, query := range q.prepared() {
		st, err := wdb.PrepareContext(ctx, query)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("prepare: %w", err), s.closeStmts())
		}
		s.stmts[query] = st
	}
	return s, nil
}

// migrate applies the dialect's migrations that db does not have yet.
func migrate(ctx context.Context, d *dialect, db *sql.DB) error {
	fsys, err := d.migrations()
	if err != nil {
		return err
	}
	opts := []goose.ProviderOption{
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(slog.New(slog.DiscardHandler)),
	}
	lk, err := d.locker()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if lk != nil {
		opts = append(opts, lk)
	}
	p, err := goose.NewProvider(d.goose, db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	current, latest, err := p.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if current > latest {
		return fmt.Errorf("migrate: database schema version %d is newer than this program's %d", current, latest)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Tx runs fn in a write transaction and commits if fn returns nil. If fn
// returns an error, or panics, the transaction is rolled back and nothing of
// it is kept; fn's error is returned as is. Write transactions wait for one
// another, so fn must not call Tx itself; it may read through the Store,
// which sees the last committed state.
func (s *Store) Tx(ctx context.Context, fn func(ctx context.Context, tx lapse.Tx) error) error {
	if s.d.deferAudit {
		return s.sharedTx(ctx, fn)
	}
	if s.writer != nil {
		select {
		case s.writer <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("begin: %w", context.Cause(ctx))
		}
		defer func() { <-s.writer }()
	}
	sqlTx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	t := &tx{
		reader: reader{d: s.d, q: s.q},
		s:      s,
		db:     &txQuerier{q: sqlTx, tx: sqlTx, prepared: s.stmts},
	}
	t.reader.db = t.db
	done := false
	defer func() {
		if !done { // fn panicked
			_ = sqlTx.Rollback()
			s.forgetHead()
		}
	}()
	err = fn(ctx, t)
	if err != nil {
		done = true
		t.restoreVersions()
		s.forgetHead()
		if rerr := sqlTx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			return s.conflictOr(errors.Join(err, fmt.Errorf("rollback: %w", rerr)))
		}
		return s.conflictOr(err)
	}
	if t.appended {
		if err := t.saveTree(ctx); err != nil {
			done = true
			t.restoreVersions()
			s.forgetHead()
			return s.conflictOr(errors.Join(err, sqlTx.Rollback()))
		}
	}
	done = true
	if err := sqlTx.Commit(); err != nil {
		t.restoreVersions()
		s.forgetHead()
		return s.conflictOr(fmt.Errorf("commit: %w", err))
	}
	if t.appended && s.d.singleWriter {
		s.head, s.headOK = t.tree.State(), true
	}
	if s.active != nil {
		s.active.apply(t.changes)
	}
	t.committed()
	return nil
}

// ActiveGrant returns the grant of user on resource and role that is active
// at now and expires last, or an error matching [lapse.ErrNotFound]. Where
// this process makes every write, it answers from memory.
func (s *Store) ActiveGrant(ctx context.Context, user, resource, role string, now time.Time) (lapse.Grant, error) {
	if s.active == nil {
		return s.reader.ActiveGrant(ctx, user, resource, role, now)
	}
	g, ok := s.active.find(grantKey{user, resource, role}, now)
	if !ok {
		return lapse.Grant{}, lapse.NotFoundf("%s has no active grant of %s on %s", user, role, resource)
	}
	return lapse.Grant{ID: g.id, User: user, Resource: resource, Role: role, ExpiresAt: g.expires}, nil
}

// conflictOr returns err, marked as [lapse.ErrConflict] if the database
// refused the transaction because of a concurrent one.
func (s *Store) conflictOr(err error) error {
	if s.d.conflict != nil && !errors.Is(err, lapse.ErrConflict) && s.d.conflict(err) {
		return &conflictError{err: err}
	}
	return err
}

// conflictError is a database error by which a transaction lost to a
// concurrent one. It matches [lapse.ErrConflict] and the database error.
type conflictError struct{ err error }

func (e *conflictError) Error() string {
	return "changed concurrently, try again: " + e.err.Error()
}

func (e *conflictError) Unwrap() []error { return []error{lapse.ErrConflict, e.err} }

// forgetHead drops the cached head of the audit log after a failed
// transaction, so that the next one reads it from the database.
func (s *Store) forgetHead() {
	if s.d.singleWriter {
		s.headOK = false
	}
}

// Close closes the database. The store must not be used after.
func (s *Store) Close() error {
	if s.grouper != nil {
		s.grouper.close()
	}
	if s.sealer != nil {
		s.sealer.close()
	}
	err := errors.Join(s.closeStmts(), s.pool.close())
	err = errors.Join(err, s.wdb.Close())
	if s.rdb != s.wdb {
		err = errors.Join(err, s.rdb.Close())
	}
	if err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

func (s *Store) closeStmts() error {
	var errs []error
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}
