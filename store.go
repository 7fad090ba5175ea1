package lapse

import (
	"context"
	"time"
)

// RequestFilter selects requests for listing. Zero fields match everything.
type RequestFilter struct {
	States   []State
	User     string
	Resource string
	// Approver, if set, keeps pending requests (and active ones with an
	// extension waiting) that this user has not approved yet and did not
	// make.
	Approver string
	// Limit caps the result; 0 means the store's default (500).
	Limit int
}

// AuditFilter selects audit events. Zero fields match everything.
type AuditFilter struct {
	Since     time.Time
	Until     time.Time
	User      string
	Resource  string
	RequestID string
	Type      string
	// AfterSeq returns events with a larger sequence number (a cursor).
	AfterSeq int64
	// Limit caps the result; 0 means the store's default (1000).
	Limit int
}

// Reader reads the store.
type Reader interface {
	// GetRequest returns the request with id, or an error matching
	// [ErrNotFound].
	GetRequest(ctx context.Context, id string) (Request, error)
	// ListRequests returns matching requests, newest first.
	ListRequests(ctx context.Context, f RequestFilter) ([]Request, error)
	// ActiveGrant returns the grant (id, user, resource, role and expiry) of
	// user on resource and role that is active at now (state active and
	// expiry after now) and expires last, or an error matching
	// [ErrNotFound]. It is the access check's hot path.
	ActiveGrant(ctx context.Context, user, resource, role string, now time.Time) (Grant, error)
	// NextDue returns the earliest NextAt of all requests, and false when no
	// request has anything due. A store that several servers share may
	// take the call as the caller's promise to call again by the time
	// returned, and announce to the servers only due times earlier than it.
	NextDue(ctx context.Context) (time.Time, bool, error)
	// ListAudit returns matching audit events in sequence order.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
	// ScanAudit calls fn for every audit event in sequence order, stopping at
	// the first error, which it returns.
	ScanAudit(ctx context.Context, fn func(AuditEvent) error) error
	// GetDevice returns the device with id, or an error matching
	// [ErrNotFound].
	GetDevice(ctx context.Context, id string) (Device, error)
	CheckpointReader
	// LastAuditSeq returns the sequence number of the last audit event, 0
	// when the log is empty.
	LastAuditSeq(ctx context.Context) (int64, error)
	// ListAlerts returns matching alerts in id order.
	ListAlerts(ctx context.Context, f AlertFilter) ([]Alert, error)
	// CountOpenAlerts returns how many alerts about user are open.
	CountOpenAlerts(ctx context.Context, user string) (int, error)
	// SinkCursor returns the sequence number of the last audit event
	// delivered to the named export sink, 0 when none was.
	SinkCursor(ctx context.Context, sink string) (int64, error)
	// SessionByToken returns the session whose TokenHash is hash (revoked
	// and expired ones included), or an error matching [ErrNotFound].
	SessionByToken(ctx context.Context, hash string) (Session, error)
	// ServiceAccountByToken returns the service account whose TokenHash is
	// hash (revoked ones included), or an error matching [ErrNotFound].
	ServiceAccountByToken(ctx context.Context, hash string) (ServiceAccount, error)
	// ListServiceAccounts returns every service account, revoked ones
	// included, by name.
	ListServiceAccounts(ctx context.Context) ([]ServiceAccount, error)
	// GetIdentity returns what the last sign-in said of user, or an error
	// matching [ErrNotFound].
	GetIdentity(ctx context.Context, user string) (Identity, error)
}

// Tx is one read-write transaction. Its methods must not be used after the
// function passed to [Store.Tx] returns.
type Tx interface {
	Reader
	// CreateRequest stores a new request with Version 1. A duplicate id is
	// an error matching [ErrConflict], from this call or, on a store that
	// sends the write together with the transaction's next statement, from
	// that statement or from the commit; the transaction then fails.
	CreateRequest(ctx context.Context, r *Request) error
	// UpdateRequest stores r if the stored version is still r.Version, and
	// increments r.Version. Otherwise it returns an error matching
	// [ErrConflict]. When r is revoking or in a terminal state, sealed
	// credentials waiting for it are deleted in the same transaction.
	UpdateRequest(ctx context.Context, r *Request) error
	// UpdateRequestOrAbort is UpdateRequest for a caller that gives up the
	// transaction on a conflict: the store may send the write, and check
	// the version, with the transaction's next statement or its commit
	// instead of at this call. A changed version (or a missing request)
	// then fails that statement or the commit, and so the transaction,
	// with an error matching [ErrConflict] (or [ErrNotFound]). r.Version
	// is incremented, and is as it was before if the transaction fails.
	UpdateRequestOrAbort(ctx context.Context, r *Request) error
	// DueRequests returns up to limit requests whose NextAt is at or before
	// now, earliest first, locked for this transaction where the store
	// supports it (other transactions skip them).
	DueRequests(ctx context.Context, now time.Time, limit int) ([]Request, error)
	// AppendAudit appends events. The store gives them their Seq, PrevHash
	// and Hash when it writes them, which may be at commit.
	AppendAudit(ctx context.Context, evs ...AuditEvent) error
	// AfterCommit registers f to be called once the transaction has
	// committed, with the audit records it appended as stored, in order.
	// f is not called when the transaction rolls back; it must not block.
	AfterCommit(f func(stored []AuditEvent))
	// PutSecret stores sealed credentials for the request, replacing any.
	PutSecret(ctx context.Context, requestID string, sealed []byte) error
	// TakeSecret returns the sealed credentials for the request and deletes
	// them, or an error matching [ErrNotFound].
	TakeSecret(ctx context.Context, requestID string) ([]byte, error)
	// DeleteSecret deletes sealed credentials if there are any.
	DeleteSecret(ctx context.Context, requestID string) error
	// ReleaseClaims makes every request claimed by owner due at now.
	ReleaseClaims(ctx context.Context, owner string, now time.Time) (int, error)
	// PutDevice stores a device's posture, replacing what was known.
	PutDevice(ctx context.Context, d Device) error
	CheckpointWriter
	// CreateAlert stores a new open alert and sets a.ID and a.State. An
	// alert without rule, valid severity or raise time is an error matching
	// [ErrInvalid].
	CreateAlert(ctx context.Context, a *Alert) error
	// AckAlert marks the open alert with id acknowledged by by at at and
	// returns it. A missing alert is an error matching [ErrNotFound]; one
	// already acknowledged an error matching [ErrConflict].
	AckAlert(ctx context.Context, id int64, by string, at time.Time) (Alert, error)
	// SetSinkCursor records that the named sink has received every audit
	// event up to seq. Moving a cursor backwards is an error matching
	// [ErrConflict].
	SetSinkCursor(ctx context.Context, sink string, seq int64) error
	// CreateSession stores a new session, and deletes sessions whose
	// refresh token expired more than [SessionRetention] before
	// s.CreatedAt. A duplicate id or token hash is an error matching
	// [ErrConflict].
	CreateSession(ctx context.Context, s Session) error
	// PutIdentity stores what a sign-in said of a user, replacing what was
	// known.
	PutIdentity(ctx context.Context, id Identity) error
	// SessionByRefresh returns the session whose RefreshHash or
	// PrevRefreshHash is hash, or an error matching [ErrNotFound].
	SessionByRefresh(ctx context.Context, hash string) (Session, error)
	// UpdateSession stores s over the session with its id (token hashes,
	// expiry, revocation), or returns an error matching [ErrNotFound].
	UpdateSession(ctx context.Context, s Session) error
	// ListSessions returns the unrevoked sessions of user whose refresh
	// token has not expired at now.
	ListSessions(ctx context.Context, user string, now time.Time) ([]Session, error)
	// CreateServiceAccount stores a new service account. An existing one of
	// that name, even revoked, is an error matching [ErrConflict].
	CreateServiceAccount(ctx context.Context, a ServiceAccount) error
	// RevokeServiceAccount marks the named account revoked at at, or
	// returns an error matching [ErrNotFound] (no such account) or
	// [ErrConflict] (already revoked).
	RevokeServiceAccount(ctx context.Context, name string, at time.Time) (ServiceAccount, error)
	// PutPendingLogin stores a sign-in in progress and deletes those that
	// expired before l.CreatedAt.
	PutPendingLogin(ctx context.Context, l PendingLogin) error
	// TakePendingLogin returns and deletes the sign-in with stateHash, or
	// returns an error matching [ErrNotFound].
	TakePendingLogin(ctx context.Context, stateHash string) (PendingLogin, error)
	// PutLoginCode stores a one-time code and deletes codes that expired
	// before now.
	PutLoginCode(ctx context.Context, c LoginCode, now time.Time) error
	// TakeLoginCode returns and deletes the code with codeHash, or returns
	// an error matching [ErrNotFound].
	TakeLoginCode(ctx context.Context, codeHash string) (LoginCode, error)
}

// Store persists requests and the audit log.
type Store interface {
	Reader
	LeaseStore
	SerialRevocations
	// Tx runs fn in a read-write transaction and commits if fn returns nil.
	// Conflicting concurrent transactions are serialized or fail with an
	// error matching [ErrConflict]; nothing of a failed fn is kept.
	Tx(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error
	// Close releases the store.
	Close() error
}
