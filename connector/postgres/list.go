package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lapse-access/lapse"
)

// List returns every role in the target whose name starts with lapse_ and
// whose comment names the grant it was created for. Roles named like that
// without such a comment were not created by this package and are left
// out.
func (c *Connector) List(ctx context.Context) ([]lapse.Existing, error) {
	var out []lapse.Existing
	err := c.do(ctx, func(ctx context.Context, pool *pgxpool.Pool) error {
		out = out[:0]
		rows, err := pool.Query(ctx, `
SELECT rolname::text, shobj_description(oid, 'pg_authid')
FROM pg_roles WHERE left(rolname, length($1)) = $1 ORDER BY rolname`, RolePrefix)
		if err != nil {
			return err
		}
		var (
			name    string
			comment *string
		)
		_, err = pgx.ForEachRow(rows, []any{&name, &comment}, func() error {
			if id, ok := grantOfComment(comment); ok {
				out = append(out, lapse.Existing{Ref: name, GrantID: id})
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list roles on %s: %w", c.name, err)
	}
	return out, nil
}

// maxQueryChars is how much of a session's query [Connector.Activity]
// and [Connector.SampleActivity] return.
const maxQueryChars = 200

// Session is one backend of a grant's role, from pg_stat_activity.
type Session struct {
	// PID is the backend's process id.
	PID int32 `json:"pid"`
	// Database is the database the session is connected to.
	Database string `json:"database"`
	// BackendStart is when the session logged in.
	BackendStart time.Time `json:"backend_start"`
	// QueryStart is when the current or last query started; zero if none.
	QueryStart time.Time `json:"query_start,omitzero"`
	// ClientAddr is the client's IP address; empty for a unix socket.
	ClientAddr string `json:"client_addr,omitempty"`
	// ApplicationName is what the client reported as application_name.
	ApplicationName string `json:"application_name,omitempty"`
	// State is "active", "idle", "idle in transaction" and so on.
	State string `json:"state"`
	// Query is the current or last query, cut to 200 characters.
	Query string `json:"query"`
}

// Activity returns the sessions of the grant's role, oldest first. It
// returns none once the role is gone.
func (c *Connector) Activity(ctx context.Context, g lapse.Grant) ([]Session, error) {
	role, err := roleOf(g)
	if err != nil {
		return nil, lapse.Unrecoverable(fmt.Errorf("sample activity on %s: %w", c.name, err))
	}
	var out []Session
	err = c.do(ctx, func(ctx context.Context, pool *pgxpool.Pool) error {
		out = out[:0]
		rows, err := pool.Query(ctx, `
SELECT pid, coalesce(datname::text, ''), backend_start, query_start,
       coalesce(host(client_addr), ''), coalesce(application_name, ''),
       coalesce(state, ''), coalesce(left(query, $2), '')
FROM pg_stat_activity WHERE usename = $1 ORDER BY backend_start, pid`, role, maxQueryChars)
		if err != nil {
			return err
		}
		var (
			s          Session
			start, qst *time.Time
		)
		_, err = pgx.ForEachRow(rows, []any{&s.PID, &s.Database, &start, &qst, &s.ClientAddr, &s.ApplicationName, &s.State, &s.Query}, func() error {
			s.BackendStart, s.QueryStart = deref(start), deref(qst)
			out = append(out, s)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sample activity of role %s on %s: %w", role, c.name, err)
	}
	return out, nil
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// ActivityKind is the [lapse.Activity.Kind] of a session.
const ActivityKind = "session"

// SampleActivity returns the sessions of the grant's role as activities,
// oldest first: one per backend, keyed by its process id and start time
// ("pid 4242 since 2026-05-04T10:00:01.123456Z"), which no later session
// of the server repeats. Details hold the database, client address,
// application name, state and the current or last query, cut to 200
// characters; empty values are left out. It returns none once the role is
// gone.
func (c *Connector) SampleActivity(ctx context.Context, g lapse.Grant) ([]lapse.Activity, error) {
	sessions, err := c.Activity(ctx, g)
	if err != nil {
		return nil, err
	}
	out := make([]lapse.Activity, 0, len(sessions))
	for _, s := range sessions {
		out = append(out, s.activity())
	}
	return out, nil
}

// activity returns s as a [lapse.Activity].
func (s Session) activity() lapse.Activity {
	start := s.BackendStart.UTC()
	d := make(map[string]string, 5)
	for k, v := range map[string]string{
		"database":         s.Database,
		"client_addr":      s.ClientAddr,
		"application_name": s.ApplicationName,
		"state":            s.State,
		"query":            s.Query,
	} {
		if v != "" {
			d[k] = v
		}
	}
	return lapse.Activity{
		Key:     "pid " + strconv.Itoa(int(s.PID)) + " since " + start.Format(time.RFC3339Nano),
		Kind:    ActivityKind,
		At:      start,
		Details: d,
	}
}
