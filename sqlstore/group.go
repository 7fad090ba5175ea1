package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lapse-access/lapse"
)

// groupMax bounds the transactions committed together, and groupsInFlight
// the groups of one store committing at once.
const (
	groupMax       = 64
	groupsInFlight = 4
)

// grouper commits the write-only transactions of a shared store together
// (group commit): a transaction whose function only queued writes and
// appended audit records has sent nothing to the database when it
// commits, so it joins the transactions committing at that moment, and
// one database transaction (BEGIN, every member's writes, one insert of
// all their audit records, COMMIT, in one round trip) commits them all.
// If that fails, each member is committed again on its own, so that only
// the one at fault fails.
type grouper struct {
	s *Store

	mu      sync.Mutex
	waiting []*writeSet
	running int
	leaders sync.WaitGroup
	// shared counts the groups of more than one transaction committed.
	shared atomic.Int64
}

// writeSet is what one write-only transaction commits, and how it went.
type writeSet struct {
	queued []queuedWrite
	evs    []lapse.AuditEvent
	done   chan struct{}
	// ids are the pending ids of evs, in order; since is a head of the log
	// read before the commit.
	ids   []int64
	since int64
	err   error
}

// commit commits queued and evs, with whatever other transactions commit
// at the same moment, and returns the pending ids of evs and a head of
// the log read before. Once handed over, the commit runs to its end or to
// its timeout even if ctx ends, so that the caller learns whether it
// committed as far as anyone can; a commit whose outcome is unknown (the
// connection lost after COMMIT was sent) is an error matching
// [ErrOutcomeUnknown].
func (g *grouper) commit(ctx context.Context, queued []queuedWrite, evs []lapse.AuditEvent) ([]int64, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("commit: %w", context.Cause(ctx))
	}
	ws := &writeSet{queued: queued, evs: evs, done: make(chan struct{})}
	g.mu.Lock()
	g.waiting = append(g.waiting, ws)
	if g.running < groupsInFlight {
		g.running++
		g.leaders.Go(g.lead)
	}
	g.mu.Unlock()
	<-ws.done
	return ws.ids, ws.since, ws.err
}

// lead commits groups of the waiting transactions until none waits.
func (g *grouper) lead() {
	for {
		g.mu.Lock()
		n := min(len(g.waiting), groupMax)
		if n == 0 {
			g.running--
			g.mu.Unlock()
			return
		}
		group := g.waiting[:n:n]
		g.waiting = g.waiting[n:]
		g.mu.Unlock()
		err := g.exec(group)
		if err == nil && len(group) > 1 {
			g.shared.Add(1)
		}
		if errors.Is(err, errRolledBack) && len(group) > 1 {
			// Nothing of the group committed, and one of them may be at
			// fault: each again on its own.
			for _, ws := range group {
				ws.err = g.exec([]*writeSet{ws})
			}
		} else {
			for _, ws := range group {
				ws.err = err
			}
		}
		for _, ws := range group {
			close(ws.done)
		}
	}
}

// errRolledBack marks an error after which nothing of a group committed:
// the database refused a statement, or nothing was sent.
var errRolledBack = errors.New("rolled back")

// rolledBack is err, after which nothing of a group committed.
type rolledBack struct{ err error }

func (e *rolledBack) Error() string   { return e.err.Error() }
func (e *rolledBack) Unwrap() []error { return []error{errRolledBack, e.err} }

// ErrOutcomeUnknown is the error of a commit that may or may not have
// happened: the connection was lost after COMMIT was sent.
var ErrOutcomeUnknown = errors.New("commit: the connection was lost after COMMIT was sent; the transaction may have committed")

// close waits for the groups committing.
func (g *grouper) close() { g.leaders.Wait() }

// exec commits group in one database transaction and round trip, or
// nothing of it.
func (g *grouper) exec(group []*writeSet) error {
	ctx, cancel := context.WithTimeout(context.Background(), sealTimeout)
	defer cancel()
	var evs []lapse.AuditEvent
	for _, ws := range group {
		evs = append(evs, ws.evs...)
	}
	var args []any
	if len(evs) > 0 {
		var err error
		if args, err = appendArgs(evs); err != nil {
			return &rolledBack{fmt.Errorf("append audit: %w", err)}
		}
	}
	since := g.s.sealer.head.Load()
	conn, err := g.s.wdb.Conn(ctx)
	if err != nil {
		return &rolledBack{fmt.Errorf("begin: %w", err)}
	}
	var queued []queuedWrite
	for _, ws := range group {
		queued = append(queued, ws.queued...)
	}
	c := &sharedConn{s: g.s, conn: conn, queued: queued}
	defer c.close()
	ids, committed, err := c.commit(ctx, args, len(evs))
	if err == nil || committed {
		for _, ws := range group {
			ws.ids, ids = ids[:len(ws.evs):len(ws.evs)], ids[len(ws.evs):]
			ws.since = since
		}
		return nil
	}
	g.s.rollback(ctx, c)
	// What the database answered with an error, it has rolled back whole.
	var pe *pgconn.PgError
	if errors.As(err, &pe) || errors.Is(err, errTxRolledBack) {
		return &rolledBack{err}
	}
	return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
}
