-- Requests, the audit log and sealed credentials.
--
-- Times are integer Unix nanoseconds in UTC; a zero time is NULL.
-- Durations are integer nanoseconds. Approvals and the pending extension are
-- JSON text.
--
-- These migrations mirror migrations/sqlite one for one, with the same
-- numbers, names and columns. Porting a SQLite migration is mechanical:
--
--   SQLite                          PostgreSQL
--   INTEGER (time, duration, count) BIGINT
--   INTEGER holding a Go bool       BOOLEAN
--   TEXT                            TEXT
--   BLOB                            BYTEA
--   STRICT, WITHOUT ROWID           dropped
--   partial and plain indexes       the same
--   CREATE TRIGGER ... RAISE(ABORT) a plpgsql function that raises, and a
--                                   trigger that executes it
--
-- Everything else (ON CONFLICT, RETURNING, NULLS LAST) is written the same
-- way in both. What PostgreSQL alone needs, because several servers write
-- to it at once, goes into the file of the same number as the SQLite
-- migration it belongs with (here: the due-time notifications and the
-- shared keys), never into a number of its own: the two folders keep one
-- numbering, so porting never reorders versions.

-- +goose Up
CREATE TABLE requests (
    id                  TEXT    NOT NULL PRIMARY KEY,
    user_name           TEXT    NOT NULL,
    resource            TEXT    NOT NULL,
    role                TEXT    NOT NULL,
    reason              TEXT    NOT NULL,
    ticket              TEXT    NOT NULL,
    duration            BIGINT  NOT NULL,
    start_at            BIGINT,
    state               TEXT    NOT NULL,
    created_at          BIGINT,
    updated_at          BIGINT,
    pending_until       BIGINT,
    approvals_needed    BIGINT  NOT NULL,
    approvals           TEXT,
    activated_at        BIGINT,
    expires_at          BIGINT,
    ended_at            BIGINT,
    end_reason          TEXT    NOT NULL,
    ended_by            TEXT    NOT NULL,
    note                TEXT    NOT NULL,
    extension           TEXT,
    ref                 TEXT    NOT NULL,
    attempts            BIGINT  NOT NULL,
    next_at             BIGINT,
    owner               TEXT    NOT NULL,
    last_error          TEXT    NOT NULL,
    credentials_waiting BOOLEAN NOT NULL,
    version             BIGINT  NOT NULL
);

-- The scheduler's due scan and its next wake-up.
CREATE INDEX requests_next_at ON requests (next_at, id) WHERE next_at IS NOT NULL;
-- Access checks. Partial, so that only entering and leaving the active
-- state touches it.
CREATE INDEX requests_active ON requests (user_name, resource, role, expires_at) WHERE state = 'active';
-- Listings, newest first.
CREATE INDEX requests_created_at ON requests (created_at, id);

CREATE TABLE audit (
    seq        BIGINT NOT NULL PRIMARY KEY,
    time       BIGINT,
    type       TEXT   NOT NULL,
    actor      TEXT   NOT NULL,
    request_id TEXT   NOT NULL,
    user_name  TEXT   NOT NULL,
    resource   TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    from_state TEXT   NOT NULL,
    to_state   TEXT   NOT NULL,
    data       BYTEA,
    prev_hash  TEXT   NOT NULL,
    hash       TEXT   NOT NULL
);

CREATE INDEX audit_user ON audit (user_name, seq);
CREATE INDEX audit_resource ON audit (resource, seq);
CREATE INDEX audit_request ON audit (request_id, seq);
CREATE INDEX audit_time ON audit (time);

-- The log is append-only. This stops mistakes, not an attacker with the
-- database; the hash chain detects the latter.
-- +goose StatementBegin
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- Every server keeps a timer armed at the earliest due time. A request
-- that becomes due at a new time tells all of them on the channel
-- lapse_due, with the time (Unix nanoseconds) as the payload; notifications
-- are delivered when the transaction commits, once per distinct payload.
-- +goose StatementBegin
CREATE FUNCTION requests_notify_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lapse_due', NEW.next_at::text);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER requests_due_insert AFTER INSERT ON requests
    FOR EACH ROW WHEN (NEW.next_at IS NOT NULL)
    EXECUTE FUNCTION requests_notify_due();
CREATE TRIGGER requests_due_update AFTER UPDATE OF next_at ON requests
    FOR EACH ROW WHEN (NEW.next_at IS NOT NULL AND NEW.next_at IS DISTINCT FROM OLD.next_at)
    EXECUTE FUNCTION requests_notify_due();

-- Keys and state that every server must share (signing keys, CA keys),
-- by name. Secret values are sealed (AES-256-GCM) under the key the
-- servers are configured with; the database never holds them in clear.
CREATE TABLE shared_keys (
    name       TEXT   NOT NULL PRIMARY KEY,
    value      BYTEA  NOT NULL,
    created_at BIGINT NOT NULL
);

-- Sealed credentials waiting to be fetched once. The store keeps only what
-- it is given, already sealed by the caller.
CREATE TABLE secrets (
    request_id TEXT  NOT NULL PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE,
    sealed     BYTEA NOT NULL
);

-- +goose Down
DROP TABLE secrets;
DROP TABLE shared_keys;
DROP TABLE requests;
DROP FUNCTION requests_notify_due();
DROP TABLE audit;
DROP FUNCTION audit_append_only();
