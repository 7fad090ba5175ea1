package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
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
// the log read before. Once handed over, the commit runs to its end even
// if ctx ends, so that the caller learns whether it committed.
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
		if err != nil && len(group) > 1 {
			// One of them may be at fault: each again on its own.
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
			return fmt.Errorf("append audit: %w", err)
		}
	}
	since := g.s.sealer.head.Load()
	for attempt := 0; ; attempt++ {
		conn, err := g.s.wdb.Conn(ctx)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		var ids []int64
		began, committed := false, false
		err = conn.Raw(func(dc any) error {
			pc, ok := pgxConn(dc)
			if !ok {
				return errNotPgx
			}
			b := &pgx.Batch{}
			b.Queue("begin")
			for _, ws := range group {
				for _, w := range ws.queued {
					b.Queue(w.query, w.args...)
				}
			}
			if args != nil {
				b.Queue(insertPendingSQL, args...)
			}
			b.Queue("commit")
			br := pc.SendBatch(ctx, b)
			err := func() error {
				if _, err := br.Exec(); err != nil {
					return err
				}
				began = true
				for _, ws := range group {
					for range ws.queued {
						if _, err := br.Exec(); err != nil {
							return checkedErr(err)
						}
					}
				}
				if args != nil {
					var err error
					if ids, err = scanPendingIDs(br, len(evs)); err != nil {
						return fmt.Errorf("append audit: %w", err)
					}
				}
				tag, err := br.Exec()
				if err != nil {
					return fmt.Errorf("commit: %w", err)
				}
				if tag.String() != "COMMIT" {
					return errors.New("commit: the transaction was rolled back")
				}
				committed = true
				return nil
			}()
			if cerr := br.Close(); err == nil && !committed {
				err = cerr
			}
			return err
		})
		if err != nil && began && !committed {
			g.s.rollback(ctx, conn)
		}
		if err != nil && !began {
			g.s.discardUnlessIdle(conn)
		}
		_ = conn.Close()
		if err == nil || committed {
			for _, ws := range group {
				ws.ids, ids = ids[:len(ws.evs):len(ws.evs)], ids[len(ws.evs):]
				ws.since = since
			}
			return nil
		}
		if began || !pgconn.SafeToRetry(err) || attempt >= beginRetries {
			return err
		}
	}
}
