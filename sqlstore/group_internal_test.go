package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
)

// TestPostgresGroupLostCommitReply lets a group's COMMIT reach the
// database and loses its reply, through a proxy: the members learn that
// the outcome is unknown, and none is committed again on its own (which
// would report a committed update as a conflict and store an audit record
// twice).
func TestPostgresGroupLostCommitReply(t *testing.T) {
	ctx := t.Context()
	u, err := url.Parse(newDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var armed atomic.Bool
	go func() {
		for {
			cc, err := ln.Accept()
			if err != nil {
				return
			}
			sc, err := net.Dial("tcp", target)
			if err != nil {
				cc.Close()
				continue
			}
			var hole atomic.Bool
			go func() { // server -> client
				buf := make([]byte, 64<<10)
				for {
					n, err := sc.Read(buf)
					if n > 0 && !hole.Load() {
						cc.Write(buf[:n])
					}
					if err != nil {
						cc.Close()
						return
					}
				}
			}()
			go func() { // client -> server
				buf := make([]byte, 64<<10)
				for {
					n, err := cc.Read(buf)
					if n > 0 {
						if armed.Load() && bytes.Contains(buf[:n], []byte("commit")) && armed.CompareAndSwap(true, false) {
							hole.Store(true)
							sc.Write(buf[:n])
							go func() { time.Sleep(300 * time.Millisecond); cc.Close(); time.Sleep(time.Second); sc.Close() }()
							io.Copy(io.Discard, cc)
							return
						}
						sc.Write(buf[:n])
					}
					if err != nil {
						sc.Close()
						return
					}
				}
			}()
		}
	}()
	u.Host = ln.Addr().String()
	q := u.Query()
	q.Set("default_query_exec_mode", "exec")
	u.RawQuery = q.Encode()
	s := openPostgres(t, u.String(), 4)
	r1 := pendingRequest("r1")
	if err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.CreateRequest(ctx, &r1) }); err != nil {
		t.Fatal(err)
	}
	upd := r1
	upd.State = lapse.StateDenied
	vals, err := mutableValues(&upd)
	if err != nil {
		t.Fatal(err)
	}
	args := append(vals, upd.ID, upd.Version)
	a := &writeSet{
		queued: []queuedWrite{{query: s.q.updateRequestChecked, args: append(args, upd.ID, upd.Version)}},
		evs:    []lapse.AuditEvent{lapse.NewAuditEvent(lapse.EvDenied, "bob", "", upd, nil, sealT0)},
		done:   make(chan struct{}),
	}
	b := &writeSet{
		evs:  []lapse.AuditEvent{lapse.NewAuditEvent(lapse.EvRequested, "carol", "", r1, nil, sealT0)},
		done: make(chan struct{}),
	}
	armed.Store(true)
	g := s.grouper
	g.mu.Lock()
	g.waiting = append(g.waiting, a, b)
	g.running++
	g.leaders.Go(g.lead)
	g.mu.Unlock()
	<-a.done
	<-b.done
	t.Logf("A (update r1): err=%v; B (audit only): err=%v", a.err, b.err)
	time.Sleep(500 * time.Millisecond)
	var version, nb, nbob int64
	if err := s.wdb.QueryRowContext(ctx, "select version from requests where id = 'r1'").Scan(&version); err != nil {
		t.Fatal(err)
	}
	if err := s.wdb.QueryRowContext(ctx, "select (select count(*) from audit_pending where actor = 'carol') + (select count(*) from audit where actor = 'carol'), (select count(*) from audit_pending where actor = 'bob') + (select count(*) from audit where actor = 'bob')").Scan(&nb, &nbob); err != nil {
		t.Fatal(err)
	}
	t.Logf("r1 version now %d (was 1); A's record stored %d times, B's %d times", version, nbob, nb)
	if version == 2 && (!errors.Is(a.err, ErrOutcomeUnknown) || !errors.Is(b.err, ErrOutcomeUnknown)) {
		t.Errorf("the group committed and its reply was lost: A got %v, B got %v; want both an unknown outcome", a.err, b.err)
	}
	if nb > 1 || nbob > 1 {
		t.Errorf("audit records stored twice: A's %d times, B's %d times", nbob, nb)
	}
}
