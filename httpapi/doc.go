// Package httpapi serves Lapse's HTTP JSON API under /v1, the JWKS, and the
// health endpoints. It authenticates bearer tokens, decodes bodies strictly,
// and is the only place where error kinds become status codes.
package httpapi
