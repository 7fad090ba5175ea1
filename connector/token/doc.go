// Package token is the built-in connector: a grant is a JWT signed by Lapse
// with Ed25519. Applications verify it against the published JWKS and ask
// /v1/check whether the grant behind it is still active.
package token
