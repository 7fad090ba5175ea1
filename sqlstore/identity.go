package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lapse-access/lapse"
)

const sessionColumns = `id, token_hash, refresh_hash, prev_refresh_hash, user_name, groups_json, issuer, subject, client,
	mfa_present, mfa_at, auth_time, created_at, expires_at, refresh_expires_at, revoked_at`

func scanSession(row interface{ Scan(...any) error }) (lapse.Session, error) {
	var s lapse.Session
	var groups string
	var mfa int64
	var mfaAt, authTime, created, expires, refreshExpires, revoked sql.NullInt64
	err := row.Scan(&s.ID, &s.TokenHash, &s.RefreshHash, &s.PrevRefreshHash, &s.User, &groups, &s.Issuer, &s.Subject, &s.Client,
		&mfa, &mfaAt, &authTime, &created, &expires, &refreshExpires, &revoked)
	if err != nil {
		return lapse.Session{}, err
	}
	if err := json.Unmarshal([]byte(groups), &s.Groups); err != nil {
		return lapse.Session{}, fmt.Errorf("session %s: decode groups: %w", s.ID, err)
	}
	s.MFA = lapse.MFASignals{Present: lapse.Flag(mfa), At: decodeTime(mfaAt)}
	s.AuthTime, s.CreatedAt, s.ExpiresAt = decodeTime(authTime), decodeTime(created), decodeTime(expires)
	s.RefreshExpiresAt, s.RevokedAt = decodeTime(refreshExpires), decodeTime(revoked)
	return s, nil
}

func sessionValues(s lapse.Session) ([]any, error) {
	var e encoder
	groups := s.Groups
	if groups == nil {
		groups = []string{}
	}
	v := []any{s.ID, s.TokenHash, s.RefreshHash, s.PrevRefreshHash, s.User, e.json(groups, false), s.Issuer, s.Subject, s.Client,
		int64(s.MFA.Present), e.time(s.MFA.At), e.time(s.AuthTime), e.time(s.CreatedAt), e.time(s.ExpiresAt),
		e.time(s.RefreshExpiresAt), e.time(s.RevokedAt)}
	if e.err != nil {
		return nil, e.err
	}
	return v, nil
}

// SessionByToken returns the session whose TokenHash is hash, or an error
// matching [lapse.ErrNotFound].
func (r *reader) SessionByToken(ctx context.Context, hash string) (lapse.Session, error) {
	s, err := scanSession(r.db.QueryRowContext(ctx, r.d.sql(`SELECT `+sessionColumns+` FROM sessions WHERE token_hash = ?`), hash))
	if errors.Is(err, sql.ErrNoRows) {
		return lapse.Session{}, lapse.NotFoundf("unknown session token")
	}
	if err != nil {
		return lapse.Session{}, fmt.Errorf("get session: %w", err)
	}
	return s, nil
}

// SessionByRefresh returns the session whose RefreshHash or
// PrevRefreshHash is hash, or an error matching [lapse.ErrNotFound].
func (t *tx) SessionByRefresh(ctx context.Context, hash string) (lapse.Session, error) {
	if hash == "" {
		return lapse.Session{}, lapse.NotFoundf("unknown refresh token")
	}
	s, err := scanSession(t.db.QueryRowContext(ctx, t.d.sql(`SELECT `+sessionColumns+` FROM sessions
		WHERE refresh_hash = ? OR prev_refresh_hash = ?`), hash, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return lapse.Session{}, lapse.NotFoundf("unknown refresh token")
	}
	if err != nil {
		return lapse.Session{}, fmt.Errorf("get session: %w", err)
	}
	return s, nil
}

// CreateSession stores a new session; a duplicate id or token hash is an
// error matching [lapse.ErrConflict].
func (t *tx) CreateSession(ctx context.Context, s lapse.Session) error {
	if s.ID == "" || s.TokenHash == "" || s.RefreshHash == "" {
		return lapse.Invalidf("create session: id and token hashes are required")
	}
	vals, err := sessionValues(s)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	var e encoder
	if cutoff := e.time(s.CreatedAt.Add(-lapse.SessionRetention)); cutoff != nil {
		if _, err := t.db.ExecContext(ctx, t.d.sql(`DELETE FROM sessions WHERE refresh_expires_at < ?`), cutoff); err != nil {
			return fmt.Errorf("delete old sessions: %w", err)
		}
	}
	if err := t.insertOnce(ctx, "create session", lapse.Conflictf("session %s already exists", s.ID), t.d.sql(`INSERT INTO sessions (`+sessionColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`), vals...); err != nil {
		return err
	}
	return nil
}

// UpdateSession stores s over the session with its id.
func (t *tx) UpdateSession(ctx context.Context, s lapse.Session) error {
	vals, err := sessionValues(s)
	if err != nil {
		return fmt.Errorf("update session: %w", err)
	}
	args := append(vals[1:], s.ID)
	res, err := t.db.ExecContext(ctx, t.d.sql(`UPDATE sessions SET token_hash = ?, refresh_hash = ?, prev_refresh_hash = ?,
		user_name = ?, groups_json = ?, issuer = ?, subject = ?, client = ?, mfa_present = ?, mfa_at = ?, auth_time = ?,
		created_at = ?, expires_at = ?, refresh_expires_at = ?, revoked_at = ? WHERE id = ?`), args...)
	if err != nil {
		return fmt.Errorf("update session %s: %w", s.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update session %s: %w", s.ID, err)
	} else if n == 0 {
		return lapse.NotFoundf("session %s not found", s.ID)
	}
	return nil
}

// ListSessions returns the unrevoked sessions of user whose refresh token
// has not expired at now, oldest first.
func (t *tx) ListSessions(ctx context.Context, user string, now time.Time) ([]lapse.Session, error) {
	var e encoder
	at := e.time(now)
	if e.err != nil {
		return nil, e.err
	}
	rows, err := t.db.QueryContext(ctx, t.d.sql(`SELECT `+sessionColumns+` FROM sessions
		WHERE user_name = ? AND revoked_at IS NULL AND refresh_expires_at > ? ORDER BY created_at, id`), user, at)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	defer rows.Close()
	var out []lapse.Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

const serviceAccountColumns = `name, groups_json, token_hash, created_by, created_at, revoked_at`

func scanServiceAccount(row interface{ Scan(...any) error }) (lapse.ServiceAccount, error) {
	var a lapse.ServiceAccount
	var groups string
	var created, revoked sql.NullInt64
	if err := row.Scan(&a.Name, &groups, &a.TokenHash, &a.CreatedBy, &created, &revoked); err != nil {
		return lapse.ServiceAccount{}, err
	}
	if err := json.Unmarshal([]byte(groups), &a.Groups); err != nil {
		return lapse.ServiceAccount{}, fmt.Errorf("service account %s: decode groups: %w", a.Name, err)
	}
	a.CreatedAt, a.RevokedAt = decodeTime(created), decodeTime(revoked)
	return a, nil
}

// ServiceAccountByToken returns the service account whose TokenHash is
// hash, or an error matching [lapse.ErrNotFound].
func (r *reader) ServiceAccountByToken(ctx context.Context, hash string) (lapse.ServiceAccount, error) {
	a, err := scanServiceAccount(r.db.QueryRowContext(ctx, r.d.sql(`SELECT `+serviceAccountColumns+` FROM service_accounts WHERE token_hash = ?`), hash))
	if errors.Is(err, sql.ErrNoRows) {
		return lapse.ServiceAccount{}, lapse.NotFoundf("unknown service token")
	}
	if err != nil {
		return lapse.ServiceAccount{}, fmt.Errorf("get service account: %w", err)
	}
	return a, nil
}

// ListServiceAccounts returns every service account by name.
func (r *reader) ListServiceAccounts(ctx context.Context) ([]lapse.ServiceAccount, error) {
	rows, err := r.db.QueryContext(ctx, r.d.sql(`SELECT `+serviceAccountColumns+` FROM service_accounts ORDER BY name`))
	if err != nil {
		return nil, fmt.Errorf("list service accounts: %w", err)
	}
	defer rows.Close()
	var out []lapse.ServiceAccount
	for rows.Next() {
		a, err := scanServiceAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("list service accounts: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// CreateServiceAccount stores a new service account; an existing name is
// an error matching [lapse.ErrConflict].
func (t *tx) CreateServiceAccount(ctx context.Context, a lapse.ServiceAccount) error {
	if a.Name == "" || a.TokenHash == "" {
		return lapse.Invalidf("create service account: name and token hash are required")
	}
	var e encoder
	groups := a.Groups
	if groups == nil {
		groups = []string{}
	}
	vals := []any{a.Name, e.json(groups, false), a.TokenHash, a.CreatedBy, e.time(a.CreatedAt), e.time(a.RevokedAt)}
	if e.err != nil {
		return fmt.Errorf("create service account: %w", e.err)
	}
	if err := t.insertOnce(ctx, "create service account", lapse.Conflictf("service account %s already exists (names are never reused, even after revocation)", a.Name), t.d.sql(`INSERT INTO service_accounts (`+serviceAccountColumns+`)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`), vals...); err != nil {
		return err
	}
	return nil
}

// RevokeServiceAccount marks the named account revoked at at.
func (t *tx) RevokeServiceAccount(ctx context.Context, name string, at time.Time) (lapse.ServiceAccount, error) {
	a, err := scanServiceAccount(t.db.QueryRowContext(ctx, t.d.sql(`SELECT `+serviceAccountColumns+` FROM service_accounts WHERE name = ?`), name))
	if errors.Is(err, sql.ErrNoRows) {
		return lapse.ServiceAccount{}, lapse.NotFoundf("no service account %q", name)
	}
	if err != nil {
		return lapse.ServiceAccount{}, fmt.Errorf("revoke service account: %w", err)
	}
	if !a.RevokedAt.IsZero() {
		return a, lapse.Conflictf("service account %s was already revoked at %s", name, a.RevokedAt.Format(time.RFC3339))
	}
	var e encoder
	v := e.time(at)
	if e.err != nil || at.IsZero() {
		return a, lapse.Invalidf("revoke service account: a revocation time is required")
	}
	if _, err := t.db.ExecContext(ctx, t.d.sql(`UPDATE service_accounts SET revoked_at = ? WHERE name = ?`), v, name); err != nil {
		return a, fmt.Errorf("revoke service account %s: %w", name, err)
	}
	a.RevokedAt = at.UTC()
	return a, nil
}

// PutPendingLogin stores a sign-in in progress and deletes expired ones.
func (t *tx) PutPendingLogin(ctx context.Context, l lapse.PendingLogin) error {
	if l.StateHash == "" {
		return lapse.Invalidf("put pending login: no state hash")
	}
	var e encoder
	created, expires := e.time(l.CreatedAt), e.time(l.ExpiresAt)
	if e.err != nil || created == nil || expires == nil {
		return lapse.Invalidf("put pending login: creation and expiry times are required")
	}
	if _, err := t.db.ExecContext(ctx, t.d.sql(`DELETE FROM pending_logins WHERE expires_at < ?`), created); err != nil {
		return fmt.Errorf("delete expired logins: %w", err)
	}
	if err := t.insertOnce(ctx, "put pending login", lapse.Conflictf("a sign-in with this state exists already"), t.d.sql(`INSERT INTO pending_logins (state_hash, browser_hash, nonce, verifier, return_to,
		cli_redirect, cli_challenge, cli_state, max_age, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		l.StateHash, l.BrowserHash, l.Nonce, l.Verifier, l.ReturnTo, l.CLIRedirect, l.CLIChallenge, l.CLIState, int64(l.MaxAge), created, expires); err != nil {
		return err
	}
	return nil
}

// TakePendingLogin returns and deletes the sign-in with stateHash.
func (t *tx) TakePendingLogin(ctx context.Context, stateHash string) (lapse.PendingLogin, error) {
	var l lapse.PendingLogin
	var maxAge int64
	var created, expires sql.NullInt64
	err := t.db.QueryRowContext(ctx, t.d.sql(`DELETE FROM pending_logins WHERE state_hash = ?
		RETURNING state_hash, browser_hash, nonce, verifier, return_to, cli_redirect, cli_challenge, cli_state, max_age, created_at, expires_at`),
		stateHash).Scan(&l.StateHash, &l.BrowserHash, &l.Nonce, &l.Verifier, &l.ReturnTo, &l.CLIRedirect, &l.CLIChallenge, &l.CLIState,
		&maxAge, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return lapse.PendingLogin{}, lapse.NotFoundf("unknown or already used sign-in state")
	}
	if err != nil {
		return lapse.PendingLogin{}, fmt.Errorf("take pending login: %w", err)
	}
	l.MaxAge, l.CreatedAt, l.ExpiresAt = time.Duration(maxAge), decodeTime(created), decodeTime(expires)
	return l, nil
}

// loginSession is the part of a session a login code carries.
type loginSession struct {
	User     string    `json:"user"`
	Groups   []string  `json:"groups"`
	Issuer   string    `json:"issuer"`
	Subject  string    `json:"subject"`
	Client   string    `json:"client"`
	MFA      int8      `json:"mfa"`
	MFAAt    time.Time `json:"mfa_at"`
	AuthTime time.Time `json:"auth_time"`
}

// PutLoginCode stores a one-time code and deletes expired ones.
func (t *tx) PutLoginCode(ctx context.Context, c lapse.LoginCode, now time.Time) error {
	if c.CodeHash == "" || c.Challenge == "" {
		return lapse.Invalidf("put login code: code hash and challenge are required")
	}
	var e encoder
	s := c.Session
	body := e.json(loginSession{User: s.User, Groups: s.Groups, Issuer: s.Issuer, Subject: s.Subject, Client: s.Client,
		MFA: int8(s.MFA.Present), MFAAt: s.MFA.At, AuthTime: s.AuthTime}, false)
	at, expires := e.time(now), e.time(c.ExpiresAt)
	if e.err != nil || at == nil || expires == nil {
		return lapse.Invalidf("put login code: times are required")
	}
	if _, err := t.db.ExecContext(ctx, t.d.sql(`DELETE FROM login_codes WHERE expires_at < ?`), at); err != nil {
		return fmt.Errorf("delete expired login codes: %w", err)
	}
	if err := t.insertOnce(ctx, "put login code", lapse.Conflictf("login code exists already"), t.d.sql(`INSERT INTO login_codes (code_hash, challenge, session_json, expires_at)
		VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`), c.CodeHash, c.Challenge, body, expires); err != nil {
		return err
	}
	return nil
}

// TakeLoginCode returns and deletes the code with codeHash.
func (t *tx) TakeLoginCode(ctx context.Context, codeHash string) (lapse.LoginCode, error) {
	c := lapse.LoginCode{CodeHash: codeHash}
	var body string
	var expires sql.NullInt64
	err := t.db.QueryRowContext(ctx, t.d.sql(`DELETE FROM login_codes WHERE code_hash = ? RETURNING challenge, session_json, expires_at`),
		codeHash).Scan(&c.Challenge, &body, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return lapse.LoginCode{}, lapse.NotFoundf("unknown or already used login code")
	}
	if err != nil {
		return lapse.LoginCode{}, fmt.Errorf("take login code: %w", err)
	}
	var ls loginSession
	if err := json.Unmarshal([]byte(body), &ls); err != nil {
		return lapse.LoginCode{}, fmt.Errorf("take login code: decode: %w", err)
	}
	c.ExpiresAt = decodeTime(expires)
	c.Session = lapse.Session{User: ls.User, Groups: ls.Groups, Issuer: ls.Issuer, Subject: ls.Subject, Client: ls.Client,
		MFA: lapse.MFASignals{Present: lapse.Flag(ls.MFA), At: ls.MFAAt}, AuthTime: ls.AuthTime}
	return c, nil
}

// GetIdentity returns what the last sign-in said of user, or an error
// matching [lapse.ErrNotFound].
func (r *reader) GetIdentity(ctx context.Context, user string) (lapse.Identity, error) {
	id := lapse.Identity{User: user}
	var groups string
	var seen sql.NullInt64
	err := r.db.QueryRowContext(ctx, r.d.sql(`SELECT groups_json, issuer, subject, seen_at FROM identities WHERE user_name = ?`), user).
		Scan(&groups, &id.Issuer, &id.Subject, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return lapse.Identity{}, lapse.NotFoundf("no sign-in of %q is known", user)
	}
	if err != nil {
		return lapse.Identity{}, fmt.Errorf("get identity: %w", err)
	}
	if err := json.Unmarshal([]byte(groups), &id.Groups); err != nil {
		return lapse.Identity{}, fmt.Errorf("identity %s: decode groups: %w", user, err)
	}
	id.SeenAt = decodeTime(seen)
	return id, nil
}

// PutIdentity stores what a sign-in said of a user, replacing what was
// known.
func (t *tx) PutIdentity(ctx context.Context, id lapse.Identity) error {
	if id.User == "" {
		return lapse.Invalidf("put identity: no user")
	}
	var e encoder
	groups := id.Groups
	if groups == nil {
		groups = []string{}
	}
	g, seen := e.json(groups, false), e.time(id.SeenAt)
	if e.err != nil || seen == nil {
		return lapse.Invalidf("put identity: a time seen is required")
	}
	_, err := t.db.ExecContext(ctx, t.d.sql(`INSERT INTO identities (user_name, groups_json, issuer, subject, seen_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (user_name) DO UPDATE SET groups_json = excluded.groups_json, issuer = excluded.issuer,
			subject = excluded.subject, seen_at = excluded.seen_at`), id.User, g, id.Issuer, id.Subject, seen)
	if err != nil {
		return fmt.Errorf("put identity %s: %w", id.User, err)
	}
	return nil
}

// insertOnce runs an INSERT ... ON CONFLICT DO NOTHING and returns
// conflict when it inserted nothing; what names the step in errors.
func (t *tx) insertOnce(ctx context.Context, what string, conflict error, query string, args ...any) error {
	res, err := t.db.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return conflict
	}
	return nil
}
