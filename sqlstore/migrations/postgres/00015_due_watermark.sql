-- Announcing due times only when a server would otherwise miss them.
--
-- Every server keeps a timer armed at the earliest due time it knows and,
-- when it fires, asks again (lapse_next_due). A notification per changed
-- due time made every such transaction take the database's notification
-- lock at commit and woke every server; most of them announce a time
-- later than the one every server is already armed for.
--
-- due_watermark.at is a time by which every server will look again: the
-- last earliest due time a server asked for (lapse_next_due sets it), or
-- an earlier time announced since. A due time at or after it needs no
-- notification; an earlier one is announced and lowers it. NULL means no
-- server has asked yet, so every time is announced.
--
-- A server that asks takes an advisory lock exclusively, which waits for
-- the transactions that decided against announcing (they hold it shared
-- until they end), so its answer includes their due times. A transaction
-- that cannot take the shared lock at once, because a server is asking,
-- announces its time instead of waiting. The watermark's row is lowered
-- under a second advisory lock taken without waiting, so that writers
-- never queue (or deadlock) on it: one that cannot take it announces and
-- leaves the row as it is, which only means more announcements.

-- +goose Up
CREATE TABLE due_watermark (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at BIGINT
);
INSERT INTO due_watermark (id, at) VALUES (1, NULL);

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION requests_notify_due() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    w bigint;
BEGIN
    IF pg_try_advisory_xact_lock_shared(7483921650) THEN
        SELECT d.at INTO w FROM due_watermark d WHERE d.id = 1;
        IF w IS NOT NULL AND NEW.next_at >= w THEN
            RETURN NULL;
        END IF;
        -- Lowered by one transaction at a time, without waiting: a second
        -- one announces and leaves the row to the first.
        IF pg_try_advisory_xact_lock(7483921651) THEN
            UPDATE due_watermark SET at = NEW.next_at WHERE id = 1 AND (at IS NULL OR at > NEW.next_at);
        END IF;
    END IF;
    PERFORM pg_notify('lapse_due', NEW.next_at::text);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION lapse_next_due() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    m bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(7483921650);
    SELECT MIN(next_at) INTO m FROM requests WHERE next_at IS NOT NULL;
    UPDATE due_watermark SET at = m WHERE id = 1 AND at IS DISTINCT FROM m;
    RETURN m;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION lapse_next_due();
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION requests_notify_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lapse_due', NEW.next_at::text);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
DROP TABLE due_watermark;
