-- Nothing to do on SQLite. On PostgreSQL this number adds the functions by
-- which the database checks writes that the store sends without waiting
-- for their result; here every write runs in this process.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
