-- Appending to the audit log inside the database. Every append locks the
-- audit tree's one row, which holds the head of the log, so the lock is
-- what serializes every writer of every server; this function does all
-- that the lock guards in one statement: lock the row, chain the records
-- (SHA-256 over the first field, the previous hash and the tail the caller
-- computed: lapse.AuditEvent.ComputeHash), insert them, extend the RFC 6962
-- compact range and store it. The store sends it together with COMMIT, so
-- that no client round trip happens while the row is locked.
--
-- Arguments are one array per column, all of the same length, in the
-- order of the records; tails[i] is lapse.AuditEvent.AppendHashTail of
-- record i. It returns the sequence number of the first record, the hash
-- it follows, and every record's hash.
--
-- The SQLite migration of this number does nothing: there one process
-- writes, and it chains the records itself.

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION lapse_audit_append(
    tails bytea[], times bigint[], types text[], actors text[], request_ids text[],
    users text[], resources text[], roles text[], froms text[], tos text[], datas bytea[],
    OUT first_seq bigint, OUT prev_hash text, OUT hashes text[])
LANGUAGE plpgsql AS $$
DECLARE
    n     int := coalesce(array_length(tails, 1), 0);
    sz    bigint;
    head  text;
    rng   bytea;
    h     text;
    leaf  bytea;
    bits  bigint;
BEGIN
    IF n = 0 THEN
        RAISE EXCEPTION 'audit append: no records';
    END IF;
    IF coalesce(array_length(times, 1), 0) <> n OR coalesce(array_length(types, 1), 0) <> n
        OR coalesce(array_length(actors, 1), 0) <> n OR coalesce(array_length(request_ids, 1), 0) <> n
        OR coalesce(array_length(users, 1), 0) <> n OR coalesce(array_length(resources, 1), 0) <> n
        OR coalesce(array_length(roles, 1), 0) <> n OR coalesce(array_length(froms, 1), 0) <> n
        OR coalesce(array_length(tos, 1), 0) <> n OR coalesce(array_length(datas, 1), 0) <> n THEN
        RAISE EXCEPTION 'audit append: the columns hold different numbers of records';
    END IF;
    SELECT t.size, t.head_hash, t.hashes INTO sz, head, rng FROM audit_tree t WHERE t.id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'audit append: the audit tree has no row';
    END IF;
    first_seq := sz + 1;
    prev_hash := head;
    hashes := array_fill(NULL::text, ARRAY[n]);
    FOR i IN 1 .. n LOOP
        IF tails[i] IS NULL THEN
            RAISE EXCEPTION 'audit append: record % has no hash input', i;
        END IF;
        h := encode(sha256('\x00000000000000080000000000000008'::bytea
            || int8send(octet_length(head)::bigint) || convert_to(head, 'UTF8') || tails[i]), 'hex');
        hashes[i] := h;
        -- RFC 6962: the leaf hash, merged with the subtrees it completes.
        leaf := sha256('\x00'::bytea || decode(h, 'hex'));
        bits := sz;
        WHILE bits & 1 = 1 LOOP
            leaf := sha256('\x01'::bytea || substr(rng, octet_length(rng) - 31, 32) || leaf);
            rng := substr(rng, 1, octet_length(rng) - 32);
            bits := bits >> 1;
        END LOOP;
        rng := rng || leaf;
        sz := sz + 1;
        head := h;
    END LOOP;
    INSERT INTO audit (seq, time, type, actor, request_id, user_name, resource, role,
                       from_state, to_state, data, prev_hash, hash)
    SELECT first_seq + r.o - 1, r.time, r.type, r.actor, r.request_id, r.user_name, r.resource, r.role,
           r.from_state, r.to_state, r.data,
           CASE WHEN r.o = 1 THEN prev_hash ELSE hashes[r.o - 1] END, hashes[r.o]
    FROM unnest(times, types, actors, request_ids, users, resources, roles, froms, tos, datas)
         WITH ORDINALITY AS r(time, type, actor, request_id, user_name, resource, role, from_state, to_state, data, o);
    UPDATE audit_tree SET size = sz, head_hash = head, hashes = rng WHERE id = 1;
END;
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION lapse_audit_append(bytea[], bigint[], text[], text[], text[], text[], text[], text[], text[], text[], bytea[]);
