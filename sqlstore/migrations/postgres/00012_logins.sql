-- Sign-ins in progress at the identity provider (keyed by the hash of the
-- state parameter), and the one-time codes a CLI sign-in exchanges for a
-- session (keyed by the code's hash, bound to the S256 challenge of a
-- verifier the CLI holds). Both live for minutes.

-- +goose Up
CREATE TABLE pending_logins (
    state_hash    TEXT    NOT NULL PRIMARY KEY,
    browser_hash  TEXT    NOT NULL,
    nonce         TEXT    NOT NULL,
    verifier      TEXT    NOT NULL,
    return_to     TEXT    NOT NULL,
    cli_redirect  TEXT    NOT NULL,
    cli_challenge TEXT    NOT NULL,
    cli_state     TEXT    NOT NULL,
    max_age       BIGINT  NOT NULL,
    created_at    BIGINT  NOT NULL,
    expires_at    BIGINT  NOT NULL
);

CREATE INDEX pending_logins_expires ON pending_logins (expires_at);

CREATE TABLE login_codes (
    code_hash    TEXT    NOT NULL PRIMARY KEY,
    challenge    TEXT    NOT NULL,
    session_json TEXT    NOT NULL,
    expires_at   BIGINT  NOT NULL
);

CREATE INDEX login_codes_expires ON login_codes (expires_at);

-- +goose Down
DROP TABLE login_codes;
DROP TABLE pending_logins;
