// Package reconcile removes accesses that targets still hold but no grant
// accounts for: orphans.
//
// An orphan is what a crash can leave behind: a connector created a
// database role, and Lapse died before it recorded the grant as active and
// later gave up on it, or the record was lost. The expiry scheduler only
// revokes what its records name, so such an access would stay for good.
// A [Sweeper] asks every connector, at a fixed interval, what exists in its
// target ([lapse.Connector.List]) and compares it with the store.
//
// An access is an orphan when the store has no request with its grant id,
// or when that request is pending (it was never provisioned) or has ended
// in any way: ended, denied, cancelled, timed out or failed. An access
// whose request is approved (a provisioning may be in flight), active or
// revoking belongs to the scheduler and is never touched. A request that
// changed less than a minute before the listing is left to the next sweep,
// so that an access that the scheduler removes while the sweep runs is not
// reported as an orphan as well.
//
// Each orphan is revoked ([lapse.Connector.Revoke]) and checked gone
// ([lapse.Connector.VerifyGone]), and an audit event of type
// [lapse.EvOrphanRemoved] with the target's receipt records it. Failures
// are logged and retried at the next sweep; one target that is down does
// not hold up the others.
//
// The sweep compares grant ids only: an access that a connector lists for a
// request on a resource of another connector (after the resource moved) is
// removed once that request has ended.
package reconcile
