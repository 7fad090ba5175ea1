-- The network address a request came from, for connectors that bind the
-- grant to it (the SSH certificate's source-address).

-- +goose Up
ALTER TABLE requests ADD COLUMN client_ip TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE requests DROP COLUMN client_ip;
