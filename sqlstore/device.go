package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lapse-access/lapse"
)

// GetDevice returns the device with id, or an error matching
// [lapse.ErrNotFound].
func (r *reader) GetDevice(ctx context.Context, id string) (lapse.Device, error) {
	var d lapse.Device
	var at int64
	err := r.db.QueryRowContext(ctx, r.d.sql(`SELECT id, owner, managed, disk_encrypted, os_up_to_date, reported_at, source
		FROM devices WHERE id = ?`), id).Scan(&d.ID, &d.Owner, &d.Managed, &d.DiskEncrypted, &d.OSUpToDate, &at, &d.Source)
	if errors.Is(err, sql.ErrNoRows) {
		return lapse.Device{}, lapse.NotFoundf("unknown device %q", id)
	}
	if err != nil {
		return lapse.Device{}, fmt.Errorf("get device: %w", err)
	}
	d.ReportedAt = decodeTime(sql.NullInt64{Int64: at, Valid: true})
	return d, nil
}

// PutDevice stores a device's posture, replacing what was known.
func (t *tx) PutDevice(ctx context.Context, d lapse.Device) error {
	if d.ID == "" {
		return lapse.Invalidf("put device: the device has no id")
	}
	var e encoder
	at := e.time(d.ReportedAt)
	if e.err != nil {
		return fmt.Errorf("put device: %w", e.err)
	}
	_, err := t.db.ExecContext(ctx, t.d.sql(`INSERT INTO devices (id, owner, managed, disk_encrypted, os_up_to_date, reported_at, source)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, managed = excluded.managed,
			disk_encrypted = excluded.disk_encrypted, os_up_to_date = excluded.os_up_to_date,
			reported_at = excluded.reported_at, source = excluded.source`),
		d.ID, d.Owner, d.Managed, d.DiskEncrypted, d.OSUpToDate, at, d.Source)
	if err != nil {
		return fmt.Errorf("put device %s: %w", d.ID, err)
	}
	return nil
}
