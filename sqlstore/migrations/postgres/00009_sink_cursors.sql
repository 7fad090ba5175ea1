-- How far each audit export sink has received the log: the sequence number
-- of the last audit record the sink acknowledged. Export resumes after it.

-- +goose Up
CREATE TABLE sink_cursors (
    sink       TEXT   NOT NULL PRIMARY KEY,
    seq        BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE sink_cursors;
