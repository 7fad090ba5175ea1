-- Requests, the audit log and sealed credentials.
--
-- Times are integer Unix nanoseconds in UTC; a zero time is NULL.
-- Durations are integer nanoseconds. Approvals and the pending extension are
-- JSON text.

-- +goose Up
CREATE TABLE requests (
    id                  TEXT    NOT NULL PRIMARY KEY,
    user_name           TEXT    NOT NULL,
    resource            TEXT    NOT NULL,
    role                TEXT    NOT NULL,
    reason              TEXT    NOT NULL,
    ticket              TEXT    NOT NULL,
    duration            INTEGER NOT NULL,
    start_at            INTEGER,
    state               TEXT    NOT NULL,
    created_at          INTEGER,
    updated_at          INTEGER,
    pending_until       INTEGER,
    approvals_needed    INTEGER NOT NULL,
    approvals           TEXT,
    activated_at        INTEGER,
    expires_at          INTEGER,
    ended_at            INTEGER,
    end_reason          TEXT    NOT NULL,
    ended_by            TEXT    NOT NULL,
    note                TEXT    NOT NULL,
    extension           TEXT,
    ref                 TEXT    NOT NULL,
    attempts            INTEGER NOT NULL,
    next_at             INTEGER,
    owner               TEXT    NOT NULL,
    last_error          TEXT    NOT NULL,
    credentials_waiting INTEGER NOT NULL,
    version             INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- The scheduler's due scan and its next wake-up.
CREATE INDEX requests_next_at ON requests (next_at, id) WHERE next_at IS NOT NULL;
-- Access checks. Partial, so that only entering and leaving the active
-- state touches it.
CREATE INDEX requests_active ON requests (user_name, resource, role, expires_at) WHERE state = 'active';
-- Listings, newest first.
CREATE INDEX requests_created_at ON requests (created_at, id);
-- Releasing a worker's claims happens once at start and scans the table:
-- an index on owner would be rewritten by every claim.

CREATE TABLE audit (
    seq        INTEGER NOT NULL PRIMARY KEY,
    time       INTEGER,
    type       TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    user_name  TEXT    NOT NULL,
    resource   TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    from_state TEXT    NOT NULL,
    to_state   TEXT    NOT NULL,
    data       BLOB,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_user ON audit (user_name, seq);
CREATE INDEX audit_resource ON audit (resource, seq);
CREATE INDEX audit_request ON audit (request_id, seq);
CREATE INDEX audit_time ON audit (time);

-- The log is append-only. This stops mistakes, not an attacker with the
-- file; the hash chain detects the latter.
-- +goose StatementBegin
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'audit log is append-only');
END;
-- +goose StatementEnd

-- Sealed credentials waiting to be fetched once. The store keeps only what
-- it is given, already sealed by the caller.
CREATE TABLE secrets (
    request_id TEXT NOT NULL PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE,
    sealed     BLOB NOT NULL
) STRICT;

-- +goose Down
DROP TABLE secrets;
DROP TABLE audit;
DROP TABLE requests;
