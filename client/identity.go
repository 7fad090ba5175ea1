package client

import (
	"context"
	"net/url"

	"github.com/lapse-access/lapse/api"
)

// ExchangeCode turns the one-time code of a CLI sign-in into a session,
// proving possession of the verifier whose challenge started it.
func (c *Client) ExchangeCode(ctx context.Context, code, verifier string) (api.Tokens, error) {
	var out api.Tokens
	err := c.Do(ctx, "POST", "/auth/token", api.TokenRequest{GrantType: "authorization_code", Code: code, CodeVerifier: verifier}, &out)
	return out, err
}

// Refresh rotates a session: the answer replaces both tokens.
func (c *Client) Refresh(ctx context.Context, refresh string) (api.Tokens, error) {
	var out api.Tokens
	err := c.Do(ctx, "POST", "/auth/token", api.TokenRequest{GrantType: "refresh_token", RefreshToken: refresh}, &out)
	return out, err
}

// Logout revokes the session of the client's token.
func (c *Client) Logout(ctx context.Context) error {
	return c.Do(ctx, "POST", "/v1/logout", nil, nil)
}

// Sessions lists the live sessions of user (empty: the caller's).
func (c *Client) Sessions(ctx context.Context, user string) ([]api.Session, error) {
	var out struct {
		Sessions []api.Session `json:"sessions"`
	}
	path := "/v1/sessions"
	if user != "" {
		path += "?user=" + url.QueryEscape(user)
	}
	err := c.Do(ctx, "GET", path, nil, &out)
	return out.Sessions, err
}

// CreateServiceAccount creates a service account; its token is in the
// answer, once.
func (c *Client) CreateServiceAccount(ctx context.Context, name string, groups []string) (api.CreatedServiceAccount, error) {
	var out api.CreatedServiceAccount
	err := c.Do(ctx, "POST", "/v1/tokens", api.CreateServiceAccount{Service: name, Groups: groups}, &out)
	return out, err
}

// ServiceAccounts lists the service accounts.
func (c *Client) ServiceAccounts(ctx context.Context) ([]api.ServiceAccount, error) {
	var out struct {
		Tokens []api.ServiceAccount `json:"tokens"`
	}
	err := c.Do(ctx, "GET", "/v1/tokens", nil, &out)
	return out.Tokens, err
}

// RevokeServiceAccount revokes a service account's token.
func (c *Client) RevokeServiceAccount(ctx context.Context, name, reason string) (api.ServiceAccount, error) {
	var out api.ServiceAccount
	err := c.Do(ctx, "POST", "/v1/tokens/"+url.PathEscape(name)+"/revoke", api.ReasonBody{Reason: reason}, &out)
	return out, err
}
