-- Anomaly alerts raised by the monitoring rules. Each is also an
-- alert.raised audit record, written in the same transaction; this table
-- holds what changes afterwards (acknowledgement) and serves listings.
-- id is assigned by the database on insert (INTEGER PRIMARY KEY here, an
-- identity column on PostgreSQL) and read back with RETURNING. details is
-- JSON text.

-- +goose Up
CREATE TABLE alerts (
    id          INTEGER NOT NULL PRIMARY KEY,
    rule        TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    user_name   TEXT    NOT NULL,
    resource    TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    request_id  TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    details     TEXT,
    auto_revoke INTEGER NOT NULL,
    raised_at   INTEGER NOT NULL,
    acked_by    TEXT    NOT NULL,
    acked_at    INTEGER
) STRICT;

-- Open alerts per user feed every risk score.
CREATE INDEX alerts_user_state ON alerts (user_name, state);
CREATE INDEX alerts_state ON alerts (state, id);

-- +goose Down
DROP TABLE alerts;
