// Package webui serves Lapse's web UI: server-rendered pages for
// requesters, approvers, admins and auditors (who read everything and are
// offered no action), calling the [broker.Broker] in-process as the
// signed-in principal.
//
// A session is the cookie [CookieName], which holds a bearer token that the
// server's [Authenticator] accepts: what [Config.Exchange] makes of an API
// token pasted on the sign-in page (a server-side session that signing out
// revokes through [Config.Logout]), or a session token that single sign-on
// issues (see [Server.SetSession]). Every state-changing
// form is a POST carrying a synchronizer token bound to the session (an
// HMAC of the cookie value under a per-server key), and its Origin and
// Sec-Fetch-Site headers must name this server; GET never changes state.
// Pages are sent with a strict Content-Security-Policy (no inline script or
// style), framing forbidden, no referrer and no caching.
package webui
