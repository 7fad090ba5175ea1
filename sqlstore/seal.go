package sqlstore

import (
	"context"
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

// sealSQL seals every committed pending record into the log and returns
// where the pending ids of $1 are in it (migration 00016).
const sealSQL = `SELECT ids, seqs, prevs, hashes FROM lapse_audit_seal($1::bigint[], $2::bigint)`

// sealTimeout bounds one seal, which serves every transaction waiting.
const sealTimeout = 10 * time.Second

// sealed is where a pending record went in the log.
type sealed struct {
	seq        int64
	prev, hash string
}

// sealer runs seals of a shared store, one at a time in this process: a
// transaction that has committed waits for a seal that begins after its
// commit, which seals its records unless another server's seal did first.
// Waiters arriving while a seal runs are served together by the next.
type sealer struct {
	s *Store
	// head is a sequence number at or before the head of the log: records
	// committed after it was read are sealed after it.
	head atomic.Int64

	mu      sync.Mutex
	running bool
	next    *sealRound
	leaders sync.WaitGroup
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
	lead := !q.running
	q.running = lead || q.running
	q.mu.Unlock()
	if lead {
		q.lead(r)
	}
	select {
	case <-r.done:
		return r.got, r.err
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// lead runs seals until own is done, and then hands the seals of those
// still waiting to a goroutine of their own (see [sealer.close]).
func (q *sealer) lead(own *sealRound) {
	for {
		q.mu.Lock()
		r := q.next
		q.next = nil
		if r == nil {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		r.got, r.err = q.seal(context.Background(), r.want, r.since)
		close(r.done)
		if r != own {
			continue
		}
		q.mu.Lock()
		if q.next == nil {
			q.running = false
		} else {
			q.leaders.Go(func() { q.lead(nil) })
		}
		q.mu.Unlock()
		return
	}
}

// close waits for the seals that no transaction leads any more.
func (q *sealer) close() { q.leaders.Wait() }

// seal seals every committed pending record and returns where those of
// want went.
func (q *sealer) seal(ctx context.Context, want []int64, since int64) (map[int64]sealed, error) {
	ctx, cancel := context.WithTimeout(ctx, sealTimeout)
	defer cancel()
	conn, err := q.s.wdb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("seal audit records: %w", err)
	}
	defer conn.Close()
	var got map[int64]sealed
	err = conn.Raw(func(dc any) error {
		pc, ok := pgxConn(dc)
		if !ok {
			return errNotPgx
		}
		var err error
		got, err = scanSealed(pc.QueryRow(ctx, sealSQL, want, since))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("seal audit records: %w", err)
	}
	for _, at := range got {
		if at.seq > q.head.Load() {
			q.head.Store(at.seq) // one leader at a time: no lost update
		}
	}
	return got, nil
}

// scanSealed reads what sealSQL returns.
func scanSealed(row pgx.Row) (map[int64]sealed, error) {
	var (
		ids, seqs     []int64
		prevs, hashes []string
	)
	if err := row.Scan(&ids, &seqs, &prevs, &hashes); err != nil {
		return nil, err
	}
	if len(seqs) != len(ids) || len(prevs) != len(ids) || len(hashes) != len(ids) {
		return nil, fmt.Errorf("seal returned %d ids, %d sequence numbers, %d previous hashes and %d hashes", len(ids), len(seqs), len(prevs), len(hashes))
	}
	got := make(map[int64]sealed, len(ids))
	for i, id := range ids {
		got[id] = sealed{seq: seqs[i], prev: prevs[i], hash: hashes[i]}
	}
	return got, nil
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
