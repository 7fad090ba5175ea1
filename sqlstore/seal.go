package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lapse-access/lapse"
)

// insertPendingSQL leaves a transaction's audit records in audit_pending
// (migration 00016), in order, and returns their ids.
const insertPendingSQL = `INSERT INTO audit_pending (tail, time, type, actor, request_id, user_name, resource, role, from_state, to_state, data)
	SELECT r.tail, r.time, r.type, r.actor, r.request_id, r.user_name, r.resource, r.role, r.from_state, r.to_state, r.data
	FROM unnest($1::bytea[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
	            $7::text[], $8::text[], $9::text[], $10::text[], $11::bytea[])
	     WITH ORDINALITY AS r(tail, time, type, actor, request_id, user_name, resource, role, from_state, to_state, data, o)
	ORDER BY r.o
	RETURNING id`

// sealSQL seals committed pending records, oldest first and at most a
// batch of them, into the log and returns where the pending ids of $1 are
// in it, and whether more wait (migration 00016).
const sealSQL = `SELECT ids, seqs, prevs, hashes, more FROM lapse_audit_seal($1::bigint[], $2::bigint)`

// sealTimeout bounds one batch of a seal; a variable for tests.
var sealTimeout = 10 * time.Second

// Delays between seals that failed, while records may be waiting.
const (
	sealRetryMin = 100 * time.Millisecond
	sealRetryMax = 5 * time.Second
)

// sealed is where a pending record went in the log.
type sealed struct {
	seq        int64
	prev, hash string
}

// sealer runs the seals of a shared store, one at a time in this process,
// in a goroutine of its own while anything waits: a transaction that has
// committed waits for a seal that begins after its commit, which seals
// its records unless another server's seal did first. Waiters arriving
// while a seal runs are served together by the next. After a failed seal
// it tries again, with backoff, until one succeeds or the store closes, so
// that committed records do not wait for the next transaction to reach
// the log.
type sealer struct {
	s *Store
	// head is a sequence number at or before the head of the log: records
	// committed after it was read are sealed after it.
	head atomic.Int64
	// ctx ends when the store closes.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	running bool
	failed  bool
	// vacuumed is when the goroutine running seals last started a vacuum;
	// vacuuming is set while one runs.
	vacuumed  time.Time
	vacuuming atomic.Bool
	next      *sealRound
	leaders   sync.WaitGroup
}

func newSealer(s *Store) *sealer {
	ctx, cancel := context.WithCancel(context.Background())
	return &sealer{s: s, ctx: ctx, cancel: cancel}
}

// sealRound is one seal and the pending ids waiting for it.
type sealRound struct {
	want  []int64
	since int64
	done  chan struct{}
	got   map[int64]sealed
	err   error
}

// wait returns where the pending records ids, committed after the log's
// head was since, are in the log.
func (q *sealer) wait(ctx context.Context, ids []int64, since int64) (map[int64]sealed, error) {
	q.mu.Lock()
	if q.next == nil {
		q.next = &sealRound{since: since, done: make(chan struct{})}
	}
	r := q.next
	r.want = append(r.want, ids...)
	r.since = min(r.since, since)
	q.startLocked()
	q.mu.Unlock()
	select {
	case <-r.done:
		return r.got, r.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// startLocked starts the goroutine that runs seals unless it runs.
func (q *sealer) startLocked() {
	if !q.running && q.ctx.Err() == nil {
		q.running = true
		q.leaders.Go(q.lead)
	}
}

// lead runs seals while transactions wait or a seal has failed.
func (q *sealer) lead() {
	wait := sealRetryMin
	for {
		q.mu.Lock()
		r := q.next
		q.next = nil
		if q.ctx.Err() != nil || (r == nil && !q.failed) {
			q.running = false
			q.mu.Unlock()
			if r != nil {
				r.err = errors.New("seal audit records: the store is closed")
				close(r.done)
			}
			return
		}
		q.mu.Unlock()
		var err error
		if r != nil {
			func() {
				defer close(r.done)
				r.got, r.err = q.seal(q.ctx, r.want, r.since)
				err = r.err
			}()
		} else {
			_, err = q.seal(q.ctx, nil, 0)
		}
		q.mu.Lock()
		q.failed = err != nil
		q.mu.Unlock()
		if err == nil {
			wait = sealRetryMin
			q.vacuum()
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-q.ctx.Done():
			t.Stop()
		case <-t.C:
		}
		wait = min(2*wait, sealRetryMax)
	}
}

// vacuumEvery is how often a server vacuums audit_pending while it seals.
const vacuumEvery = time.Second

// vacuum starts clearing audit_pending of the rows that seals deleted, at
// most once every vacuumEvery, beside the seals: every record passes
// through the table once, and until a vacuum each seal's scan for the
// oldest records wades through those gone before, which the database's
// own autovacuum, running at most once a minute, leaves for far too long.
// A vacuum that another server runs is not waited for, and the table is
// not truncated, which would lock out the transactions inserting into it.
func (q *sealer) vacuum() {
	if time.Since(q.vacuumed) < vacuumEvery || !q.vacuuming.CompareAndSwap(false, true) {
		return
	}
	q.vacuumed = time.Now()
	q.leaders.Go(func() {
		defer q.vacuuming.Store(false)
		ctx, cancel := context.WithTimeout(q.ctx, sealTimeout)
		defer cancel()
		_, _ = q.s.wdb.ExecContext(ctx, "VACUUM (SKIP_LOCKED, TRUNCATE false) audit_pending")
	})
}

// close stops the seals and waits for the one running.
func (q *sealer) close() {
	q.cancel()
	q.leaders.Wait()
}

// seal seals every committed pending record, batch by batch, and returns
// where those of want went.
func (q *sealer) seal(ctx context.Context, want []int64, since int64) (map[int64]sealed, error) {
	got := map[int64]sealed{}
	for {
		more, err := q.sealBatch(ctx, want, since, got)
		if err != nil {
			return nil, fmt.Errorf("seal audit records: %w", err)
		}
		if !more {
			return got, nil
		}
	}
}

// sealBatch runs one batch of a seal, adding to got where records of want
// went, and reports whether more records wait.
func (q *sealer) sealBatch(ctx context.Context, want []int64, since int64, got map[int64]sealed) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, sealTimeout)
	defer cancel()
	conn, err := q.s.wdb.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	var more bool
	err = conn.Raw(func(dc any) error {
		pc, ok := pgxConn(dc)
		if !ok {
			return errNotPgx
		}
		var err error
		more, err = scanSealed(pc.QueryRow(ctx, sealSQL, want, since), got)
		return err
	})
	if err != nil {
		return false, err
	}
	for _, at := range got {
		if at.seq > q.head.Load() {
			q.head.Store(at.seq) // one seal at a time: no lost update
		}
	}
	return more, nil
}

// scanSealed reads what sealSQL returns into got, and whether more
// records wait.
func scanSealed(row pgx.Row, got map[int64]sealed) (bool, error) {
	var (
		ids, seqs     []int64
		prevs, hashes []string
		more          bool
	)
	if err := row.Scan(&ids, &seqs, &prevs, &hashes, &more); err != nil {
		return false, err
	}
	if len(seqs) != len(ids) || len(prevs) != len(ids) || len(hashes) != len(ids) {
		return false, fmt.Errorf("seal returned %d ids, %d sequence numbers, %d previous hashes and %d hashes", len(ids), len(seqs), len(prevs), len(hashes))
	}
	for i, id := range ids {
		got[id] = sealed{seq: seqs[i], prev: prevs[i], hash: hashes[i]}
	}
	return more, nil
}

// place gives evs, whose pending ids are ids, their places in the log as
// got says. Records a failed seal left pending keep Seq 0 until a later
// seal.
func place(evs []lapse.AuditEvent, ids []int64, got map[int64]sealed) []lapse.AuditEvent {
	out := make([]lapse.AuditEvent, len(evs))
	for i, ev := range evs {
		if at, ok := got[ids[i]]; ok {
			ev.Seq, ev.PrevHash, ev.Hash = at.seq, at.prev, at.hash
		}
		out[i] = ev
	}
	return out
}

// SealAudit seals the audit records that transactions committed and no
// seal has taken yet, such as those of a server that stopped between
// committing and sealing. A store with one writer has none.
func (s *Store) SealAudit(ctx context.Context) error {
	if s.sealer == nil {
		return nil
	}
	_, err := s.sealer.seal(ctx, nil, 0)
	return err
}
