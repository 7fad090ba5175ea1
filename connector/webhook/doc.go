// Package webhook grants access in systems that Lapse does not speak
// natively, by calling a receiver that the system's owners run: every
// provision, revoke and extend becomes a signed HTTPS POST with a JSON
// [Body], and the receiver does the work.
//
// # Calls
//
// [Connector.Provision], [Connector.Revoke] and [Connector.Extend] post to
// [Config.ProvisionURL], [Config.RevokeURL] and [Config.ExtendURL]. When no
// extend URL is configured, extend calls go to the provision URL, still
// with event "extend": a receiver that treats every call but revoke as
// "make sure the access exists until expires_at" needs nothing more.
//
// Each body carries a random call_id, new in every call, so that no two
// calls share a signature. Each call carries three headers:
//
//	Content-Type: application/json
//	Idempotency-Key: <grant id>:<event>     (extend: <grant id>:extend:<new expiry, unix seconds>)
//	Lapse-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the shared secret>
//
// (see [Sign] and [IdempotencyKey]), and has its own timeout
// ([Config.Timeout]). Redirects are not followed. docs/webhook.md in the
// repository describes the protocol for receivers, with code that checks
// the signature.
//
// # Answers
//
// A 2xx answer confirms the call. Its body may be empty or a JSON
// [Response]: credentials or instructions that Lapse hands to the
// requester once, and a receipt of non-secret facts. Everything else is an
// error that the scheduler retries with backoff: other statuses
// ([StatusError]), timeouts, bodies over 1 MiB ([MaxResponseBytes]) and
// malformed JSON. For provision and extend, a 4xx status other than 408,
// 409, 425 and 429 is marked [lapse.Unrecoverable]: the receiver refused
// the grant, so the request fails at once instead of after every retry.
// Revocation is never given up: it is retried until the receiver confirms
// it. Errors quote at most 200 bytes of an error response's body and never
// the secret.
//
// # Receipts
//
// The receiver's 2xx answer to revoke is the confirmation that the access
// is gone. [Connector.VerifyGone] returns the receipt of that answer, kept
// in memory, or, when the answer had none, a receipt that records the
// status and the time of the confirmation. Without a confirmed revoke call
// in this process it returns an error, so that the scheduler revokes again
// (which the receiver must accept).
//
// # Reconciliation
//
// [Connector.List] returns nothing unless [Config.ListURL] is set; then it
// posts {"event":"list","call_id":...} and expects {"grant_ids": [...]}, each grant's
// Ref being its id. With a list URL, VerifyGone also checks that the
// revoked grant is no longer listed.
//
// # Roles
//
// A role's settings ([RoleSettings], decoded by [Connector.DecodeRole])
// take one optional key, params, passed unchanged in every call:
//
//	roles:
//	  - name: admin
//	    params: {group: billing-admins}
package webhook
