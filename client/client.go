// Package client is a typed client of Lapse's HTTP API, used by the CLI
// and by end-to-end tests.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
)

// Client calls one Lapse server as one principal.
type Client struct {
	// Server is the base URL, e.g. http://127.0.0.1:8080.
	Server string
	// Token is the bearer token.
	Token string
	HTTP  *http.Client
	// OnStepUp, if set, is called once when the server answers
	// step_up_required: it signs the user in again with a second factor
	// at most maxAge old and returns the new token, and the call is
	// retried with it.
	OnStepUp func(ctx context.Context, maxAge time.Duration) (token string, err error)
}

// New returns a client for server with token.
func New(server, token string) *Client {
	return &Client{Server: strings.TrimRight(server, "/"), Token: token, HTTP: http.DefaultClient}
}

// Error is an error response of the API. It matches the lapse error kind of
// its status code.
type Error struct {
	Status  int
	Code    string
	Message string
	// MaxAge is set with Code step_up_required: the age in seconds the
	// second factor may have at most.
	MaxAge int64
}

// StepUp reports whether the server asks for a fresher second factor, and
// how fresh.
func (e *Error) StepUp() (time.Duration, bool) {
	if e.Code != "step_up_required" {
		return 0, false
	}
	return time.Duration(e.MaxAge) * time.Second, true
}

func (e *Error) Error() string { return e.Message }

// Unwrap maps the status code to a lapse error kind.
func (e *Error) Unwrap() error {
	switch e.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return lapse.ErrInvalid
	case http.StatusUnauthorized:
		return lapse.ErrUnauthenticated
	case http.StatusForbidden:
		return lapse.ErrForbidden
	case http.StatusNotFound:
		return lapse.ErrNotFound
	case http.StatusConflict:
		return lapse.ErrConflict
	case http.StatusGone:
		return lapse.ErrGone
	}
	return nil
}

// Do sends a request with an optional JSON body and decodes the JSON answer
// into out (if not nil).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	err := c.do(ctx, method, path, body, out)
	var e *Error
	if c.OnStepUp == nil || !errors.As(err, &e) {
		return err
	}
	maxAge, ok := e.StepUp()
	if !ok {
		return err
	}
	tok, serr := c.OnStepUp(ctx, maxAge)
	if serr != nil {
		return fmt.Errorf("%w (signing in again failed: %v)", err, serr)
	}
	// The refused call changed nothing; ask again once.
	c.Token = tok
	return c.do(ctx, method, path, body, out)
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// send sends a request with an optional JSON body and returns the
// response of a success; an error response becomes an *Error.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("call %s: %w", c.Server, err)
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	var e api.Error
	if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
		return nil, &Error{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message, MaxAge: e.Error.MaxAge}
	}
	return nil, &Error{Status: resp.StatusCode, Code: "http", Message: fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(data)))}
}

// Submit creates a request.
func (c *Client) Submit(ctx context.Context, in api.SubmitRequest) (api.Request, error) {
	var out api.Request
	return out, c.Do(ctx, http.MethodPost, "/v1/requests", in, &out)
}

// ListOptions select requests.
type ListOptions struct {
	// State is pending, active, ended, all, or a state name.
	State     string
	Mine      bool
	ToApprove bool
}

// List lists requests.
func (c *Client) List(ctx context.Context, o ListOptions) ([]api.Request, error) {
	q := url.Values{}
	if o.State != "" {
		q.Set("state", o.State)
	}
	if o.Mine {
		q.Set("mine", "true")
	}
	if o.ToApprove {
		q.Set("to_approve", "true")
	}
	var out struct {
		Requests []api.Request `json:"requests"`
	}
	err := c.Do(ctx, http.MethodGet, "/v1/requests?"+q.Encode(), nil, &out)
	return out.Requests, err
}

// Get returns one request.
func (c *Client) Get(ctx context.Context, id string) (api.Request, error) {
	var out api.Request
	return out, c.Do(ctx, http.MethodGet, "/v1/requests/"+url.PathEscape(id), nil, &out)
}

func (c *Client) act(ctx context.Context, id, action string, body any) (api.Request, error) {
	var out api.Request
	return out, c.Do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/"+action, body, &out)
}

// Approve approves a request or its pending extension.
func (c *Client) Approve(ctx context.Context, id, comment string) (api.Request, error) {
	return c.act(ctx, id, "approve", api.CommentBody{Comment: comment})
}

// Deny denies a request or its pending extension.
func (c *Client) Deny(ctx context.Context, id, reason string) (api.Request, error) {
	return c.act(ctx, id, "deny", api.ReasonBody{Reason: reason})
}

// Cancel withdraws a request that is not active yet.
func (c *Client) Cancel(ctx context.Context, id string) (api.Request, error) {
	return c.act(ctx, id, "cancel", struct{}{})
}

// Release ends one's own grant early.
func (c *Client) Release(ctx context.Context, id string) (api.Request, error) {
	return c.act(ctx, id, "release", struct{}{})
}

// Revoke ends a grant with a reason.
func (c *Client) Revoke(ctx context.Context, id, reason string) (api.Request, error) {
	return c.act(ctx, id, "revoke", api.ReasonBody{Reason: reason})
}

// Extend asks for more time.
func (c *Client) Extend(ctx context.Context, id, duration, reason string) (api.Request, error) {
	return c.act(ctx, id, "extend", api.ExtendBody{Duration: duration, Reason: reason})
}

// Credentials fetches the credentials waiting for the requester, once.
func (c *Client) Credentials(ctx context.Context, id string) (*lapse.Credentials, error) {
	var out lapse.Credentials
	if err := c.Do(ctx, http.MethodPost, "/v1/requests/"+url.PathEscape(id)+"/credentials", struct{}{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Check asks whether access is active now.
func (c *Client) Check(ctx context.Context, in api.CheckRequest) (api.CheckResponse, error) {
	var out api.CheckResponse
	return out, c.Do(ctx, http.MethodPost, "/v1/check", in, &out)
}

// AuditOptions select audit events.
type AuditOptions struct {
	Since, Until                  string
	User, Resource, Request, Type string
	After                         int64
	Limit                         int
}

// Audit returns one page of audit events.
func (c *Client) Audit(ctx context.Context, o AuditOptions) (api.AuditPage, error) {
	q := listQuery(map[string]string{"since": o.Since, "until": o.Until, "user": o.User, "resource": o.Resource, "request": o.Request, "type": o.Type}, o.After, o.Limit)
	var out api.AuditPage
	return out, c.Do(ctx, http.MethodGet, "/v1/audit?"+q, nil, &out)
}

// AuditAll returns every matching audit event, following the cursor.
func (c *Client) AuditAll(ctx context.Context, o AuditOptions) ([]lapse.AuditEvent, error) {
	var all []lapse.AuditEvent
	for {
		page, err := c.Audit(ctx, o)
		if err != nil {
			return all, err
		}
		all = append(all, page.Events...)
		if page.Next == 0 {
			return all, nil
		}
		o.After = page.Next
	}
}

// VerifyAudit asks the server to verify its audit log.
func (c *Client) VerifyAudit(ctx context.Context) (api.Verify, error) {
	var out api.Verify
	return out, c.Do(ctx, http.MethodGet, "/v1/audit/verify", nil, &out)
}

// Resources lists resources and roles.
func (c *Client) Resources(ctx context.Context) ([]api.Resource, error) {
	var out struct {
		Resources []api.Resource `json:"resources"`
	}
	return out.Resources, c.Do(ctx, http.MethodGet, "/v1/resources", nil, &out)
}

// Whoami returns the caller as the server sees them.
func (c *Client) Whoami(ctx context.Context) (api.Whoami, error) {
	var out api.Whoami
	return out, c.Do(ctx, http.MethodGet, "/v1/whoami", nil, &out)
}
