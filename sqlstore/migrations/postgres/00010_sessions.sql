-- Sign-in sessions and the identities they vouch for. Sessions: a short-lived bearer token and a rotating refresh
-- token, both stored as hex SHA-256 only, with the identity the provider
-- vouched for (groups as JSON text, the second factor as a flag: 0
-- unknown, 1 no, 2 yes).

-- +goose Up
CREATE TABLE sessions (
    id                 TEXT    NOT NULL PRIMARY KEY,
    token_hash         TEXT    NOT NULL UNIQUE,
    refresh_hash       TEXT    NOT NULL UNIQUE,
    prev_refresh_hash  TEXT    NOT NULL,
    user_name          TEXT    NOT NULL,
    groups_json        TEXT    NOT NULL,
    issuer             TEXT    NOT NULL,
    subject            TEXT    NOT NULL,
    client             TEXT    NOT NULL,
    mfa_present        BIGINT  NOT NULL,
    mfa_at             BIGINT ,
    auth_time          BIGINT ,
    created_at         BIGINT  NOT NULL,
    expires_at         BIGINT  NOT NULL,
    refresh_expires_at BIGINT  NOT NULL,
    revoked_at         BIGINT 
);

CREATE INDEX sessions_user ON sessions (user_name);
CREATE INDEX sessions_prev_refresh ON sessions (prev_refresh_hash);
-- Pruning sessions that ended long ago.
CREATE INDEX sessions_refresh_expires ON sessions (refresh_expires_at);

-- What each user's last sign-in said: their groups, for decisions about
-- their grants made while no session of theirs is at hand.
CREATE TABLE identities (
    user_name   TEXT    NOT NULL PRIMARY KEY,
    groups_json TEXT    NOT NULL,
    issuer      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    seen_at     BIGINT  NOT NULL
);

-- +goose Down
DROP TABLE identities;
DROP TABLE sessions;
