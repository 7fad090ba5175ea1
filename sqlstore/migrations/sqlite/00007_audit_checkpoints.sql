-- Signed checkpoints of the audit log: the tree's size and root hash, and
-- the signed note that states them (the authority; size, root and time are
-- kept beside it for lookups). Times are integer Unix nanoseconds in UTC.
-- Checkpoints are append-only, like the records.

-- +goose Up
CREATE TABLE audit_checkpoints (
    size INTEGER NOT NULL PRIMARY KEY,
    root BLOB    NOT NULL,
    time INTEGER NOT NULL,
    note TEXT    NOT NULL
) STRICT;

-- +goose StatementBegin
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit checkpoints are append-only');
END;
-- +goose StatementEnd

-- +goose Down
DROP TABLE audit_checkpoints;
