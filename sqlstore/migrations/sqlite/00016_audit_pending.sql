-- Nothing to do on SQLite. On PostgreSQL this number makes transactions
-- leave their audit records in a pending table, sealed into the log by a
-- short transaction that serves many; here one process writes and chains
-- the records itself.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
