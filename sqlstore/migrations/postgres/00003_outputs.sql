-- The non-secret results of provisioning that the requester may read
-- again, such as an SSH certificate: JSON text.

-- +goose Up
ALTER TABLE requests ADD COLUMN outputs TEXT;

-- +goose Down
ALTER TABLE requests DROP COLUMN outputs;
