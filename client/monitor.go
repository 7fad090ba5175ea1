package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
)

// AlertOptions select alerts.
type AlertOptions struct {
	// State is open or acknowledged; empty means both.
	State    string
	Severity string
	User     string
	After    int64
	Limit    int
}

// Alerts returns one page of alerts (admins only).
func (c *Client) Alerts(ctx context.Context, o AlertOptions) (api.AlertPage, error) {
	q := listQuery(map[string]string{"state": o.State, "severity": o.Severity, "user": o.User}, o.After, o.Limit)
	var out api.AlertPage
	return out, c.Do(ctx, http.MethodGet, "/v1/alerts?"+q, nil, &out)
}

// AlertsAll returns every matching alert, following the cursor.
func (c *Client) AlertsAll(ctx context.Context, o AlertOptions) ([]lapse.Alert, error) {
	all := []lapse.Alert{}
	for {
		page, err := c.Alerts(ctx, o)
		if err != nil {
			return all, err
		}
		all = append(all, page.Alerts...)
		if page.Next == 0 {
			return all, nil
		}
		o.After = page.Next
	}
}

// AckAlert acknowledges the open alert with id (admins only).
func (c *Client) AckAlert(ctx context.Context, id int64) (lapse.Alert, error) {
	var out lapse.Alert
	return out, c.Do(ctx, http.MethodPost, fmt.Sprintf("/v1/alerts/%d/ack", id), nil, &out)
}

// ReportActivity reports activity, with an integration's token.
func (c *Client) ReportActivity(ctx context.Context, in any) (api.ActivityResult, error) {
	var out api.ActivityResult
	return out, c.Do(ctx, http.MethodPost, "/v1/activity", in, &out)
}

// listQuery encodes a listing's filters (those not empty), cursor and page
// size as a query string.
func listQuery(filters map[string]string, after int64, limit int) string {
	q := url.Values{}
	for k, v := range filters {
		if v != "" {
			q.Set(k, v)
		}
	}
	if after > 0 {
		q.Set("after", fmt.Sprint(after))
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	return q.Encode()
}
