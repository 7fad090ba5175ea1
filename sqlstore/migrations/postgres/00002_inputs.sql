-- What the requester handed in for the connector, such as an SSH public
-- key: JSON text, never secret.

-- +goose Up
ALTER TABLE requests ADD COLUMN inputs TEXT;

-- +goose Down
ALTER TABLE requests DROP COLUMN inputs;
