-- The state of the RFC 6962 Merkle tree over the audit log, one row: the
-- number of records, the hash of the last one, and the compact range (the
-- 32-byte roots of the tree's perfect subtrees, left to right,
-- concatenated). It is updated in the same transaction as every append;
-- writers lock the row first (SELECT ... FOR UPDATE), so that the log has
-- one sequence with no gaps and no forks across all servers. The store
-- fills it from the records on first open.

-- +goose Up
CREATE TABLE audit_tree (
    id        BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    size      BIGINT NOT NULL,
    head_hash TEXT   NOT NULL,
    hashes    BYTEA  NOT NULL
);

-- +goose Down
DROP TABLE audit_tree;
