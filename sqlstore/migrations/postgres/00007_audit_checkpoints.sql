-- Signed checkpoints of the audit log: the tree's size and root hash, and
-- the signed note that states them (the authority; size, root and time are
-- kept beside it for lookups). Times are integer Unix nanoseconds in UTC.
-- Checkpoints are append-only, like the records.

-- +goose Up
CREATE TABLE audit_checkpoints (
    size BIGINT NOT NULL PRIMARY KEY,
    root BYTEA  NOT NULL,
    time BIGINT NOT NULL,
    note TEXT   NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit checkpoints are append-only';
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only();
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_append_only();

-- +goose Down
DROP TABLE audit_checkpoints;
DROP FUNCTION audit_checkpoints_append_only();
