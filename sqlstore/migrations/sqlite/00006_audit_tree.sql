-- The state of the RFC 6962 Merkle tree over the audit log, one row: the
-- number of records, the hash of the last one, and the compact range (the
-- 32-byte roots of the tree's perfect subtrees, left to right,
-- concatenated). It is updated in the same transaction as every append;
-- writers lock the row first, so that the log has one sequence with no
-- gaps and no forks. The store fills it from the records on first open.

-- +goose Up
CREATE TABLE audit_tree (
    id        INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    size      INTEGER NOT NULL,
    head_hash TEXT    NOT NULL,
    hashes    BLOB    NOT NULL
) STRICT;

-- +goose Down
DROP TABLE audit_tree;
