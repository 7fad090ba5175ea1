-- The device registry, fed by device management integrations, and the
-- device each request was made from.

-- +goose Up
CREATE TABLE devices (
    id             TEXT    NOT NULL PRIMARY KEY,
    owner          TEXT    NOT NULL,
    managed        INTEGER NOT NULL,
    disk_encrypted INTEGER NOT NULL,
    os_up_to_date  INTEGER NOT NULL,
    reported_at    INTEGER NOT NULL,
    source         TEXT    NOT NULL
) STRICT;

ALTER TABLE requests ADD COLUMN device TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE requests DROP COLUMN device;
DROP TABLE devices;
