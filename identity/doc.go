// Package identity says who is calling Lapse: local users' static tokens,
// service accounts' tokens, and sessions of users signed in through an
// OpenID Connect provider (single sign-on, for the web and for the CLI),
// with the groups and the second factor the provider vouched for, and the
// admin and auditor rights that configured groups give.
//
// [Service] authenticates bearer tokens and runs sign-in, refresh, logout
// and service accounts; every change and its audit record is one store
// transaction. [OIDC] is the relying party: authorization code flow with
// PKCE, state and nonce, ID tokens verified against the provider's keys.
//
// A CLI sign-in goes through the server, which is the only OIDC client:
// the CLI sends its loopback URL and the S256 challenge of a verifier it
// keeps; after the provider's callback the server redirects the browser to
// the loopback URL with a one-time code, which only the holder of the
// verifier can exchange for a session.
package identity
