package lapse

import (
	"context"
	"time"
)

// LeaseStore keeps named leases: each names the one server that runs a
// singleton background task (audit export to a sink, activity sampling,
// the reconciliation sweep) until the lease expires. Expiry is judged by
// the store's clock, the same for every server sharing the store.
type LeaseStore interface {
	// AcquireLease gives the named lease to owner until ttl from now when
	// it is free, expired, or owner's already (then it is renewed), in one
	// atomic step, and reports whether owner holds it now. An empty name
	// or owner, or a ttl that is not positive, is an error matching
	// [ErrInvalid].
	AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	// ReleaseLease frees the named lease if owner holds it, so that
	// another server may take it at once; otherwise it does nothing.
	ReleaseLease(ctx context.Context, name, owner string) error
}
