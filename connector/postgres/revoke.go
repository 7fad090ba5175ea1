package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lapse-access/lapse"
)

// Revoke removes the grant's role and ends its sessions. Revoking a role
// that is already gone, or that belongs to another grant, succeeds and
// changes nothing.
//
// It runs in three steps. NOLOGIN is committed first, so that no session
// can start while the others are ended. Then every backend of the role is
// terminated, and Revoke waits until they have exited (a query in progress
// is cancelled with them). Last, in one transaction, REASSIGN OWNED hands
// what the role owns in the admin DSN's database to the admin user, DROP
// OWNED removes the privileges granted to it there, and DROP ROLE removes
// it.
func (c *Connector) Revoke(ctx context.Context, g lapse.Grant) error {
	start := time.Now()
	role, err := roleOf(g)
	if err != nil {
		return lapse.Unrecoverable(fmt.Errorf("revoke on %s: %w", c.name, err))
	}
	r := ident(role)
	var outcome string
	var ended int
	err = c.doRevoke(ctx, func(ctx context.Context, pool *pgxpool.Pool) error {
		// One connection for the whole sequence: no queueing between steps.
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		var oid uint32
		var comment *string
		err = conn.QueryRow(ctx, `SELECT oid, shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1`, role).Scan(&oid, &comment)
		if errors.Is(err, pgx.ErrNoRows) {
			outcome = "absent"
			return nil
		}
		if err != nil {
			return err
		}
		if id, ok := grantOfComment(comment); !ok || id != g.ID {
			outcome = "not this grant's"
			return nil
		}
		if _, err := conn.Exec(ctx, "ALTER ROLE "+r+" NOLOGIN"); err != nil {
			if isCode(err, codeUndefinedObject) {
				outcome = "absent"
				return nil
			}
			return err
		}
		n, err := terminate(ctx, conn, oid)
		ended += n
		if err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "REASSIGN OWNED BY "+r+" TO CURRENT_USER;\nDROP OWNED BY "+r+";\nDROP ROLE "+r)
		switch {
		case isCode(err, codeUndefinedObject):
			outcome = "absent"
			return nil
		case isCode(err, codeDependentObjects):
			return fmt.Errorf("%w (logins are disabled and sessions ended; DROP OWNED acts only in database %s, so remove what the role owns or was granted in the other databases)", err, c.target.database)
		case err != nil:
			return err
		}
		// A session that had logged in just before NOLOGIN and registered
		// only after the terminate pass would outlive its role.
		n, err = terminate(ctx, conn, oid)
		ended += n
		outcome = "dropped"
		return err
	})
	if err != nil {
		return fmt.Errorf("revoke role %s on %s: %w", role, c.name, err)
	}
	c.logger.Info("role revoked", logRole, role, logGrant, g.ID, logOutcome, outcome, logSessions, ended, logElapsed, time.Since(start))
	return nil
}

// terminate ends every backend of the role with the given oid and waits
// until they have exited. It returns how many it signalled.
func terminate(ctx context.Context, q querier, oid uint32) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usesysid = $1`, oid).Scan(&n)
	if err != nil || n == 0 {
		return n, err
	}
	// pg_terminate_backend only signals. Poll until the backends are gone;
	// each query is its own transaction, so each sees a fresh
	// pg_stat_activity.
	for delay := 200 * time.Microsecond; ; delay = min(2*delay, 50*time.Millisecond) {
		var left int
		if err := q.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE usesysid = $1`, oid).Scan(&left); err != nil {
			return n, err
		}
		if left == 0 {
			return n, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return n, fmt.Errorf("%d sessions still running after being terminated: %w", left, ctx.Err())
		case <-t.C:
		}
	}
}

// querier is a pool or one connection of it.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func isCode(err error, code string) bool {
	pgErr, ok := errors.AsType[*pgconn.PgError](err)
	return ok && pgErr.Code == code
}

const verifyGoneSQL = `
SELECT
  (SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1),
  EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1),
  (SELECT count(*) FROM pg_stat_activity WHERE usename = $1),
  statement_timestamp()`

// VerifyGone checks that the grant's role is absent from pg_roles and has
// no backend in pg_stat_activity, and returns what it saw, with the
// target's clock, as the revocation receipt. A role that exists but
// belongs to another grant counts as gone for this one.
func (c *Connector) VerifyGone(ctx context.Context, g lapse.Grant) (map[string]string, error) {
	role, err := roleOf(g)
	if err != nil {
		return nil, lapse.Unrecoverable(fmt.Errorf("verify revocation on %s: %w", c.name, err))
	}
	var (
		comment  *string
		exists   bool
		backends int
		now      time.Time
	)
	err = c.doRevoke(ctx, func(ctx context.Context, pool *pgxpool.Pool) error {
		return pool.QueryRow(ctx, verifyGoneSQL, role).Scan(&comment, &exists, &backends, &now)
	})
	if err != nil {
		return nil, fmt.Errorf("verify revocation of role %s on %s: %w", role, c.name, err)
	}
	receipt := map[string]string{
		"connector":  c.name,
		"role":       role,
		"pg_roles":   "absent",
		"backends":   strconv.Itoa(backends),
		"checked_at": now.UTC().Format(time.RFC3339Nano),
	}
	if exists {
		if id, ok := grantOfComment(comment); ok && id == g.ID {
			return nil, fmt.Errorf("verify revocation on %s: role %s still exists (%d sessions)", c.name, role, backends)
		}
		// Same name, someone else's role: nothing of this grant is left.
		receipt["pg_roles"] = "present, not this grant's"
		receipt["backends"] = "0"
		return receipt, nil
	}
	if backends > 0 {
		return nil, fmt.Errorf("verify revocation on %s: role %s has %d sessions left", c.name, role, backends)
	}
	return receipt, nil
}
