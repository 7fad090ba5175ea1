// Package lease runs singleton background work, such as the audit export to
// a sink, on exactly one of several servers sharing a store.
//
// A [Runner] acquires a named lease in the store ([lapse.LeaseStore]) and
// runs its work while it holds the lease. It renews the lease well before
// it expires, and cancels the work's context when it cannot: at the latest
// when the lease, as counted from before the last successful renewal was
// sent, runs out minus a margin for the work to stop. The store counts the
// lease from when it received the renewal, which is later, so the work has
// stopped before another server can take the lease over. A server that
// dies is replaced once its lease expires and another server next tries;
// one that shuts down cleanly releases its leases at once.
package lease
