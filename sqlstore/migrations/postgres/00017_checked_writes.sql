-- Writes that the database checks itself, so that the store can send them
-- together with the statements after them instead of waiting for their
-- result: the statement ends with one of these functions over the rows it
-- wrote, which raises an error that the store maps (LP409: conflict,
-- LP404: not found) when there are none.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION lapse_request_created(n bigint, request_id text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF n = 0 THEN
        RAISE EXCEPTION 'request % already exists', request_id USING ERRCODE = 'LP409';
    END IF;
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION lapse_request_updated(n bigint, request_id text, version bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    stored bigint;
BEGIN
    IF n > 0 THEN
        RETURN;
    END IF;
    SELECT r.version INTO stored FROM requests r WHERE r.id = request_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'request % not found', request_id USING ERRCODE = 'LP404';
    END IF;
    RAISE EXCEPTION 'request % changed concurrently (version %, stored %)', request_id, version, stored
        USING ERRCODE = 'LP409';
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION lapse_request_updated(bigint, text, bigint);
DROP FUNCTION lapse_request_created(bigint, text);
