package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/report"
)

// Checkpoint returns the latest signed checkpoint of the audit log.
func (c *Client) Checkpoint(ctx context.Context) (api.Checkpoint, error) {
	var out api.Checkpoint
	return out, c.Do(ctx, http.MethodGet, "/v1/audit/checkpoint", nil, &out)
}

// SignCheckpoint has the server sign a checkpoint of the log as it is now
// (admins only) and returns it.
func (c *Client) SignCheckpoint(ctx context.Context) (api.Checkpoint, error) {
	var out api.Checkpoint
	return out, c.Do(ctx, http.MethodPost, "/v1/audit/checkpoint", struct{}{}, &out)
}

// AuditKey returns the public key that verifies checkpoints and evidence.
func (c *Client) AuditKey(ctx context.Context) (api.AuditKey, error) {
	var out api.AuditKey
	return out, c.Do(ctx, http.MethodGet, "/v1/audit/key", nil, &out)
}

// raw copies the body of a GET to w.
func (c *Client) raw(ctx context.Context, path string, w io.Writer) error {
	resp, err := c.send(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	return nil
}

// Export writes the audit log from the first record at or after since (an
// RFC 3339 time; empty for all) to w as an export file (admins only).
func (c *Client) Export(ctx context.Context, since string, w io.Writer) error {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	return c.raw(ctx, "/v1/audit/export?"+q.Encode(), w)
}

// Proof writes the record seq with its inclusion proof and checkpoint (as
// auditlog.ParseProvenRecord reads it) to w; size 0 proves it against the
// latest checkpoint.
func (c *Client) Proof(ctx context.Context, seq, size int64, w io.Writer) error {
	q := url.Values{}
	if size > 0 {
		q.Set("size", fmt.Sprint(size))
	}
	return c.raw(ctx, fmt.Sprintf("/v1/audit/%d/proof?%s", seq, q.Encode()), w)
}

// Evidence writes the signed evidence bundle of request id to w.
func (c *Client) Evidence(ctx context.Context, id string, w io.Writer) error {
	return c.raw(ctx, "/v1/requests/"+url.PathEscape(id)+"/evidence", w)
}

// Report returns the access report of [since, until) (RFC 3339 times;
// until empty for now).
func (c *Client) Report(ctx context.Context, since, until string) (report.Report, error) {
	q := url.Values{"since": {since}}
	if until != "" {
		q.Set("until", until)
	}
	var out report.Report
	return out, c.Do(ctx, http.MethodGet, "/v1/report?"+q.Encode(), nil, &out)
}
