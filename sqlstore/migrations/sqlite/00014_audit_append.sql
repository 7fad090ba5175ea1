-- Nothing to do on SQLite. On PostgreSQL this number adds the function
-- that appends audit records inside the database under the audit tree's
-- row lock; here one process writes and chains the records itself.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
