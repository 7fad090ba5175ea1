-- Leases name the one server that runs a singleton background task (audit
-- export to a sink, activity sampling, the reconciliation sweep, signing
-- checkpoints) until expires_at, in Unix nanoseconds; the holder renews
-- its lease before then, and another server may take it once it passed.
--
-- Revoked certificate serials are the revocation list of a certificate
-- authority (an ssh connector): every server serves the same list. A
-- serial stays until its certificate's valid_before (Unix nanoseconds) has
-- long passed. revocation_lists counts the changes of each list, which is
-- the version of the list a server last wrote out.

-- +goose Up
CREATE TABLE leases (
    name       TEXT    NOT NULL PRIMARY KEY,
    owner      TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL
);

CREATE TABLE revocation_lists (
    authority TEXT    NOT NULL PRIMARY KEY,
    version   BIGINT  NOT NULL
);

CREATE TABLE revoked_serials (
    authority    TEXT    NOT NULL,
    serial       BIGINT  NOT NULL,
    valid_before BIGINT  NOT NULL,
    revoked_at   BIGINT  NOT NULL,
    PRIMARY KEY (authority, serial)
);

-- +goose Down
DROP TABLE revoked_serials;
DROP TABLE revocation_lists;
DROP TABLE leases;
