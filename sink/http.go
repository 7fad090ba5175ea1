package sink

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/lapse-access/lapse"
)

// Formats of an HTTP collector's batches.
const (
	// FormatJSON sends a batch as one JSON array of events.
	FormatJSON = "json"
	// FormatJSONLines sends a batch as JSON Lines: one event per line.
	FormatJSONLines = "jsonl"
)

// HTTP posts batches of audit events to a collector. Each POST carries
// the events in sequence order, as a JSON array (Content-Type
// application/json) or as JSON Lines (application/x-ndjson), with the
// headers Lapse-First-Seq and Lapse-Last-Seq naming the range, so that a
// collector can drop a batch it has already stored. A 2xx answer
// acknowledges the whole batch; 413 makes the worker send smaller batches;
// anything else, or no answer, is retried.
type HTTP struct {
	// SinkName names the sink.
	SinkName string
	// URL is the collector's endpoint.
	URL string
	// Token, if set, is sent as a bearer token. It is never logged nor
	// put in errors.
	Token string
	// Format is [FormatJSON] (the default) or [FormatJSONLines].
	Format string
	// TLS, if set, are the TLS settings for https URLs.
	TLS *tls.Config
	// Client, if set, is used instead of one built from TLS.
	Client *http.Client
}

var _ Sink = (*HTTP)(nil)

// Name names the sink.
func (h *HTTP) Name() string { return h.SinkName }

func (h *HTTP) client() *http.Client {
	if h.Client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = h.TLS
		h.Client = &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	}
	return h.Client
}

// Encode returns the body of one batch and its content type.
func (h *HTTP) Encode(evs []lapse.AuditEvent) ([]byte, string, error) {
	var buf bytes.Buffer
	if h.Format == FormatJSONLines {
		enc := json.NewEncoder(&buf)
		for i := range evs {
			if err := enc.Encode(&evs[i]); err != nil {
				return nil, "", fmt.Errorf("encode audit event %d: %w", evs[i].Seq, err)
			}
		}
		return buf.Bytes(), "application/x-ndjson", nil
	}
	if err := json.NewEncoder(&buf).Encode(evs); err != nil {
		return nil, "", fmt.Errorf("encode audit events: %w", err)
	}
	return buf.Bytes(), "application/json", nil
}

// Deliver posts evs and returns nil on a 2xx answer.
func (h *HTTP) Deliver(ctx context.Context, evs []lapse.AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	body, ctype, err := h.Encode(evs)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("collector %s: %w", h.SinkName, err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "lapse-audit-export")
	req.Header.Set("Lapse-First-Seq", strconv.FormatInt(evs[0].Seq, 10))
	req.Header.Set("Lapse-Last-Seq", strconv.FormatInt(evs[len(evs)-1].Seq, 10))
	if h.Token != "" {
		req.Header.Set("Authorization", "Bearer "+h.Token)
	}
	resp, err := h.client().Do(req)
	if err != nil {
		// The error names the URL, never the headers.
		return fmt.Errorf("collector %s: %w", h.SinkName, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode == http.StatusRequestEntityTooLarge {
		return fmt.Errorf("collector %s answered %s: %w", h.SinkName, resp.Status, ErrTooLarge)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("collector %s answered %s", h.SinkName, resp.Status)
	}
	return nil
}

// Close closes idle connections.
func (h *HTTP) Close() error {
	if h.Client != nil {
		h.Client.CloseIdleConnections()
	}
	return nil
}
