// Package expiry runs the timed half of the lifecycle: it provisions
// approved requests when their window starts, times out pending requests,
// revokes grants at expiry, and retries failed connector calls with capped
// exponential backoff until the target confirms. It never gives up on a
// revocation.
//
// The store is the source of truth; the scheduler keeps one timer armed at
// the earliest due time ([lapse.Request.NextAt]) and re-arms it when told
// that requests changed ([Scheduler.Notify]). Work is claimed in the store
// with a lease before any connector is called, so no request is worked on
// twice at once, and a crashed worker's claim lapses.
package expiry
