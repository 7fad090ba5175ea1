-- Service accounts: machine identities with a long-lived bearer token,
-- stored as hex SHA-256 only. A revoked account keeps its row, so that its
-- name is never reused.

-- +goose Up
CREATE TABLE service_accounts (
    name        TEXT    NOT NULL PRIMARY KEY,
    groups_json TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    created_by  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT 
);

-- +goose Down
DROP TABLE service_accounts;
