package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listener follows the due times that any server sharing a PostgreSQL
// store announces (see [DueChannel]), on a connection of its own that it
// opens again whenever it is lost.
type Listener struct {
	cfg *pgx.ConnConfig
	// connected is set while the LISTEN connection is up.
	connected atomic.Bool
	// lastErr is why the connection is down, when it is.
	lastErr atomic.Pointer[error]
}

// Listener returns the store's listener, or an error for a store that no
// other server writes (SQLite).
func (s *Store) Listener() (*Listener, error) {
	if s.pgConfig == nil {
		return nil, errors.New("listen for due times: only a shared (PostgreSQL) store announces them")
	}
	return &Listener{cfg: s.pgConfig.Copy()}, nil
}

// NextDue returns the earliest NextAt of all requests, and false when no
// request has anything due. On a shared (PostgreSQL) store the caller
// promises to look again by the time returned: from then on only due times
// earlier than it are announced on [DueChannel] (migration 00015).
func (s *Store) NextDue(ctx context.Context) (time.Time, bool, error) {
	if s.pgConfig == nil {
		return s.reader.NextDue(ctx)
	}
	var next sql.NullInt64
	if err := s.wdb.QueryRowContext(ctx, "SELECT lapse_next_due()").Scan(&next); err != nil {
		return time.Time{}, false, fmt.Errorf("next due: %w", err)
	}
	return decodeTime(next), next.Valid, nil
}

// Listener reconnect delays.
const (
	listenRetryMin = 100 * time.Millisecond
	listenRetryMax = 2 * time.Second
)

// Run listens until ctx ends and returns nil then. It calls due with each
// announced time, and with the zero time whenever it (re)connects, since
// anything may have changed while it was not listening. due must not block.
// onDown, if set, is called with the error each time the connection is
// lost or cannot be made.
func (l *Listener) Run(ctx context.Context, due func(time.Time), onDown func(error)) error {
	wait := listenRetryMin
	for ctx.Err() == nil {
		err := l.listen(ctx, due, func() { wait = listenRetryMin })
		l.connected.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		l.lastErr.Store(&err)
		if onDown != nil {
			onDown(err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(2*wait, listenRetryMax)
	}
	return nil
}

// listen runs one connection until it fails.
func (l *Listener) listen(ctx context.Context, due func(time.Time), up func()) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, l.cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+DueChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	l.connected.Store(true)
	up()
	due(time.Time{})
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		ns, err := strconv.ParseInt(n.Payload, 10, 64)
		if err != nil {
			due(time.Time{}) // not ours to parse: look at everything
			continue
		}
		due(time.Unix(0, ns).UTC())
	}
}

// Ready returns nil while the listener is connected, else why it is not.
func (l *Listener) Ready() error {
	if l.connected.Load() {
		return nil
	}
	if p := l.lastErr.Load(); p != nil {
		return fmt.Errorf("not listening for due times: %w", *p)
	}
	return errors.New("not listening for due times yet")
}
