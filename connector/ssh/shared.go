package ssh

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/lapse-access/lapse"
)

// DefaultKRLRefresh is how often [Connector.Run] looks for changes of a
// revocation list kept in the store, made by other servers, to rewrite
// [Config.KRLPath].
const DefaultKRLRefresh = 2 * time.Second

// importedSuffix is appended to the name of a revocation list file once
// its serials were moved into the store.
const importedSuffix = ".imported"

// authority names the connector's revocation list in the store.
func (c *Connector) authority() string { return "ssh:" + c.name }

// sharedReady moves a revocation list file left in [Config.StateDir] by a
// version that kept it there into the store, once. Call with c.mu held.
func (c *Connector) sharedReady(ctx context.Context) error {
	if c.imported {
		return nil
	}
	if _, err := os.Stat(c.statePath); errors.Is(err, fs.ErrNotExist) {
		c.imported = true
		return nil
	}
	r, err := loadRevocations(c.statePath)
	if err != nil {
		return err
	}
	at := c.now()
	for serial, until := range r.until {
		var vb time.Time
		if until != never {
			vb = time.Unix(until, 0)
		}
		if _, err := c.store.RevokeSerial(ctx, c.authority(), serial, vb, at); err != nil {
			return fmt.Errorf("move ssh revocations into the store: %w", err)
		}
	}
	if err := os.Rename(c.statePath, c.statePath+importedSuffix); err != nil {
		return fmt.Errorf("move ssh revocations into the store: %w", err)
	}
	c.log.Info("ssh revocations moved into the store", logSerials, len(r.until))
	c.imported = true
	return nil
}

// revokeShared records the revocation in the store, durably before it
// returns, drops serials long expired and rewrites the KRL file.
func (c *Connector) revokeShared(ctx context.Context, g lapse.Grant, serial uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.sharedReady(ctx); err != nil {
		return err
	}
	now := c.now()
	changed, err := c.store.RevokeSerial(ctx, c.authority(), serial, g.ExpiresAt, now)
	if err != nil {
		return err
	}
	if changed {
		c.log.Info("ssh certificate revoked", logGrant, g.ID, logSerial, serial)
	}
	if _, err := c.store.PruneRevokedSerials(ctx, c.authority(), now.Add(-PruneGrace)); err != nil {
		c.log.Warn("prune ssh revocations", "err", err)
	}
	return c.refreshLocked(ctx)
}

// refreshLocked rewrites the KRL file if the list changed since it was
// last written. Call with c.mu held.
func (c *Connector) refreshLocked(ctx context.Context) error {
	if c.krlPath == "" {
		return nil
	}
	v, err := c.store.RevocationListVersion(ctx, c.authority())
	if err != nil {
		return err
	}
	if c.krlOK && uint64(v) == c.krlWritten {
		return nil
	}
	b, version, err := c.sharedKRL(ctx)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(c.krlPath, b, 0o644); err != nil {
		return fmt.Errorf("write KRL: %w", err)
	}
	c.krlWritten, c.krlOK = version, true
	return nil
}

// sharedKRL returns the KRL of the list in the store, and its version.
func (c *Connector) sharedKRL(ctx context.Context) ([]byte, uint64, error) {
	now := c.now()
	list, err := c.store.RevokedSerials(ctx, c.authority(), now.Add(-PruneGrace))
	if err != nil {
		return nil, 0, err
	}
	serials := make([]uint64, len(list.Serials))
	for i, s := range list.Serials {
		serials[i] = s.Serial
	}
	v := uint64(list.Version)
	return encodeKRL(c.caBlob, v, now, "lapse"+commentName(c.name), serials), v, nil
}

// verifyShared is VerifyGone on the list in the store.
func (c *Connector) verifyShared(ctx context.Context, g lapse.Grant, serial uint64, receipt map[string]string) (map[string]string, error) {
	c.mu.Lock()
	err := c.sharedReady(ctx)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	now := c.now()
	_, err = c.store.RevokedSerial(ctx, c.authority(), serial)
	if errors.Is(err, lapse.ErrNotFound) {
		if !g.ExpiresAt.IsZero() && !now.Before(g.ExpiresAt) {
			receipt["check"] = "certificate expired"
			return receipt, nil
		}
		return nil, fmt.Errorf("ssh certificate serial %d of grant %s is not revoked and valid until %s", serial, g.ID, receipt["valid_before"])
	}
	if err != nil {
		return nil, err
	}
	v, err := c.store.RevocationListVersion(ctx, c.authority())
	if err != nil {
		return nil, err
	}
	receipt["check"] = "serial in KRL"
	receipt["krl_version"] = strconv.FormatInt(v, 10)
	if c.krlPath != "" {
		c.mu.Lock()
		err := c.refreshLocked(ctx)
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return c.verifyFile(g, serial, now, receipt)
	}
	return receipt, nil
}

// Run keeps the KRL at [Config.KRLPath] up to date with a revocation list
// kept in the store, which other servers change too: it writes it at once
// and then whenever the list's version changed, checked every
// [Config.KRLRefresh], until ctx ends. It returns nil then, and at once
// when there is no store or no KRL file. Failures are logged and retried.
func (c *Connector) Run(ctx context.Context) error {
	if c.store == nil || c.krlPath == "" {
		return nil
	}
	t := time.NewTicker(c.refresh)
	defer t.Stop()
	failing := false
	for {
		c.mu.Lock()
		err := c.sharedReady(ctx)
		if err == nil {
			err = c.refreshLocked(ctx)
		}
		c.mu.Unlock()
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			c.log.Warn("refresh KRL file", "err", err)
			failing = true
		case err == nil && failing:
			c.log.Info("KRL file refreshed again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
