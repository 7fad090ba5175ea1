-- The device registry, fed by device management integrations, and the
-- device each request was made from.

-- +goose Up
CREATE TABLE devices (
    id             TEXT    NOT NULL PRIMARY KEY,
    owner          TEXT    NOT NULL,
    managed        BOOLEAN NOT NULL,
    disk_encrypted BOOLEAN NOT NULL,
    os_up_to_date  BOOLEAN NOT NULL,
    reported_at    BIGINT  NOT NULL,
    source         TEXT    NOT NULL
);

ALTER TABLE requests ADD COLUMN device TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE requests DROP COLUMN device;
DROP TABLE devices;
