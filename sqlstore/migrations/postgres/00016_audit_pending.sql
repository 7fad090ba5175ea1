-- Audit records wait in audit_pending until they are sealed into the log.
--
-- Appending to the log locks the audit tree's one row, so every appending
-- transaction of every server queued on that lock, one at a time, each for
-- its commit. Now a transaction inserts its records into audit_pending,
-- which takes no shared lock, and commits; then a server seals: in one
-- short transaction, lapse_audit_seal locks the tree's row, takes every
-- committed pending record, oldest first, chains it after the head of the
-- log (SHA-256 over the first field, the previous hash and the tail the
-- caller computed: lapse.AuditEvent.ComputeHash), inserts it into audit
-- with its sequence number, extends the RFC 6962 compact range and stores
-- it. One seal serves every record committed before it began, from every
-- server, so the lock is taken once for many transactions. The log stays
-- one chain and one tree without gaps or forks; a transaction that read
-- state another committed seals after it, so the log keeps that order.
--
-- audit.pending_id is the record's id in audit_pending, so that a server
-- can find the sequence numbers of its records when another sealed them.
-- lapse_audit_seal(want, since) returns, for the pending ids in want that
-- are sealed (now or before, with sequence numbers after since), their
-- ids, sequence numbers, previous hashes and hashes, in log order.
--
-- A seal takes at most 10,000 records and says whether it took that many
-- (more): the caller seals again, so that a backlog is sealed in bounded
-- steps.
--
-- lapse_audit_append (00014) is what servers of the version before call;
-- it now seals what is pending before it appends, so that while servers
-- are upgraded one by one the log keeps the order of commits.

-- +goose Up
ALTER TABLE audit ADD COLUMN pending_id BIGINT;

CREATE TABLE audit_pending (
    id         BIGSERIAL PRIMARY KEY,
    tail       BYTEA  NOT NULL,
    time       BIGINT,
    type       TEXT   NOT NULL,
    actor      TEXT   NOT NULL,
    request_id TEXT   NOT NULL,
    user_name  TEXT   NOT NULL,
    resource   TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    from_state TEXT   NOT NULL,
    to_state   TEXT   NOT NULL,
    data       BYTEA
);

-- +goose StatementBegin
CREATE FUNCTION lapse_audit_seal(want bigint[], since bigint,
    OUT ids bigint[], OUT seqs bigint[], OUT prevs text[], OUT hashes text[], OUT more boolean)
LANGUAGE plpgsql AS $$
DECLARE
    sz     bigint;
    head   text;
    rng    bytea;
    leaf   bytea;
    bits   bigint;
    first  bigint;
    n      int;
    p_ids  bigint[];
    tails  bytea[];
    times  bigint[];
    types  text[];
    actors text[];
    reqs   text[];
    users  text[];
    ress   text[];
    roles  text[];
    froms  text[];
    tos    text[];
    datas  bytea[];
    hs     text[];
BEGIN
    more := false;
    -- Records asked for that another seal took are only looked up: no
    -- need to wait for the tree's lock.
    IF coalesce(array_length(want, 1), 0) = 0 OR EXISTS (SELECT 1 FROM audit_pending p WHERE p.id = ANY(want)) THEN
        SELECT t.size, t.head_hash, t.hashes INTO sz, head, rng FROM audit_tree t WHERE t.id = 1 FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'audit seal: the audit tree has no row';
        END IF;
        WITH d AS (DELETE FROM audit_pending
                   WHERE id IN (SELECT p.id FROM audit_pending p ORDER BY p.id LIMIT 10000) RETURNING *)
        SELECT array_agg(d.id ORDER BY d.id), array_agg(d.tail ORDER BY d.id), array_agg(d.time ORDER BY d.id),
               array_agg(d.type ORDER BY d.id), array_agg(d.actor ORDER BY d.id), array_agg(d.request_id ORDER BY d.id),
               array_agg(d.user_name ORDER BY d.id), array_agg(d.resource ORDER BY d.id), array_agg(d.role ORDER BY d.id),
               array_agg(d.from_state ORDER BY d.id), array_agg(d.to_state ORDER BY d.id), array_agg(d.data ORDER BY d.id)
        INTO p_ids, tails, times, types, actors, reqs, users, ress, roles, froms, tos, datas
        FROM d;
        n := coalesce(array_length(p_ids, 1), 0);
        more := n >= 10000;
        IF n > 0 THEN
            first := sz + 1;
            hs := array_fill(NULL::text, ARRAY[n + 1]);
            hs[1] := head;
            FOR i IN 1 .. n LOOP
                head := encode(sha256('\x00000000000000080000000000000008'::bytea
                    || int8send(octet_length(head)::bigint) || convert_to(head, 'UTF8') || tails[i]), 'hex');
                hs[i + 1] := head;
                -- RFC 6962: the leaf hash, merged with the subtrees it completes.
                leaf := sha256('\x00'::bytea || decode(head, 'hex'));
                bits := sz;
                WHILE bits & 1 = 1 LOOP
                    leaf := sha256('\x01'::bytea || substr(rng, octet_length(rng) - 31, 32) || leaf);
                    rng := substr(rng, 1, octet_length(rng) - 32);
                    bits := bits >> 1;
                END LOOP;
                rng := rng || leaf;
                sz := sz + 1;
            END LOOP;
            INSERT INTO audit (seq, time, type, actor, request_id, user_name, resource, role,
                               from_state, to_state, data, prev_hash, hash, pending_id)
            SELECT first + r.o - 1, r.time, r.type, r.actor, r.request_id, r.user_name, r.resource, r.role,
                   r.from_state, r.to_state, r.data, hs[r.o], hs[r.o + 1], r.pid
            FROM unnest(times, types, actors, reqs, users, ress, roles, froms, tos, datas, p_ids)
                 WITH ORDINALITY AS r(time, type, actor, request_id, user_name, resource, role, from_state, to_state, data, pid, o);
            UPDATE audit_tree SET size = sz, head_hash = head, hashes = rng WHERE id = 1;
            IF want <@ p_ids THEN
                -- Every record asked for was sealed now: no need to look.
                SELECT array_agg(p.id ORDER BY p.o), array_agg(first + p.o - 1 ORDER BY p.o),
                       array_agg(hs[p.o] ORDER BY p.o), array_agg(hs[p.o + 1] ORDER BY p.o)
                INTO ids, seqs, prevs, hashes
                FROM unnest(p_ids) WITH ORDINALITY AS p(id, o) WHERE p.id = ANY(want);
                RETURN;
            END IF;
        END IF;
    END IF;
    IF coalesce(array_length(want, 1), 0) > 0 THEN
        SELECT array_agg(a.pending_id ORDER BY a.seq), array_agg(a.seq ORDER BY a.seq),
               array_agg(a.prev_hash ORDER BY a.seq), array_agg(a.hash ORDER BY a.seq)
        INTO ids, seqs, prevs, hashes
        FROM audit a WHERE a.seq > since AND a.pending_id = ANY(want);
    END IF;
END;
$$;
-- +goose StatementEnd

ALTER FUNCTION lapse_audit_append(bytea[], bigint[], text[], text[], text[], text[], text[], text[], text[], text[], bytea[])
    RENAME TO lapse_audit_append_chain;

-- +goose StatementBegin
CREATE FUNCTION lapse_audit_append(
    tails bytea[], times bigint[], types text[], actors text[], request_ids text[],
    users text[], resources text[], roles text[], froms text[], tos text[], datas bytea[],
    OUT first_seq bigint, OUT prev_hash text, OUT hashes text[])
LANGUAGE plpgsql AS $$
BEGIN
    WHILE EXISTS (SELECT 1 FROM audit_pending) LOOP
        PERFORM lapse_audit_seal(NULL, 0);
    END LOOP;
    SELECT a.first_seq, a.prev_hash, a.hashes INTO first_seq, prev_hash, hashes
    FROM lapse_audit_append_chain(tails, times, types, actors, request_ids, users, resources, roles, froms, tos, datas) a;
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- Records still pending go into the log first.
-- +goose StatementBegin
DO $$
BEGIN
    WHILE EXISTS (SELECT 1 FROM audit_pending) LOOP
        PERFORM lapse_audit_seal(NULL, 0);
    END LOOP;
END;
$$;
-- +goose StatementEnd
DROP FUNCTION lapse_audit_append(bytea[], bigint[], text[], text[], text[], text[], text[], text[], text[], text[], bytea[]);
ALTER FUNCTION lapse_audit_append_chain(bytea[], bigint[], text[], text[], text[], text[], text[], text[], text[], text[], bytea[])
    RENAME TO lapse_audit_append;
DROP FUNCTION lapse_audit_seal(bigint[], bigint);
DROP TABLE audit_pending;
ALTER TABLE audit DROP COLUMN pending_id;
