-- Nothing to do on SQLite. On PostgreSQL this number makes servers
-- announce a due time only when it is earlier than the time by which every
-- server will look again; here one process writes and wakes its own timer.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
