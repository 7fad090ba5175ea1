-- How far each audit export sink has received the log: the sequence number
-- of the last audit record the sink acknowledged. Export resumes after it.

-- +goose Up
CREATE TABLE sink_cursors (
    sink       TEXT    NOT NULL PRIMARY KEY,
    seq        INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE sink_cursors;
