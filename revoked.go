package lapse

import (
	"context"
	"time"
)

// RevokedSerial is a revoked certificate in a certificate authority's
// revocation list.
type RevokedSerial struct {
	Serial uint64
	// ValidBefore is when the certificate expires; zero means never.
	ValidBefore time.Time
	// RevokedAt is when the serial was first revoked.
	RevokedAt time.Time
}

// RevocationList is a certificate authority's revocation list.
type RevocationList struct {
	// Version counts the changes of the list; 0 means it never changed.
	Version int64
	// Serials are the revoked certificates, by serial.
	Serials []RevokedSerial
}

// SerialRevocations keeps the revocation lists of certificate authorities
// (ssh connectors) in the store, so that every server sharing it serves
// the same lists. An authority is named by a short string such as the
// connector's name.
type SerialRevocations interface {
	// RevokeSerial adds serial to the authority's list, or moves the
	// ValidBefore of a listed serial later, and then increments the
	// list's version; it reports whether the list changed. A zero
	// validBefore never expires. It is durable when it returns. A serial
	// above math.MaxInt64 or an empty authority is an error matching
	// [ErrInvalid].
	RevokeSerial(ctx context.Context, authority string, serial uint64, validBefore, at time.Time) (bool, error)
	// RevokedSerial returns the listed serial, or an error matching
	// [ErrNotFound].
	RevokedSerial(ctx context.Context, authority string, serial uint64) (RevokedSerial, error)
	// RevokedSerials returns the authority's list with the serials whose
	// ValidBefore is after since (all of them for a zero since).
	RevokedSerials(ctx context.Context, authority string, since time.Time) (RevocationList, error)
	// RevocationListVersion returns the version of the authority's list,
	// 0 if it never changed.
	RevocationListVersion(ctx context.Context, authority string) (int64, error)
	// PruneRevokedSerials deletes the serials whose ValidBefore is at or
	// before before (never those that do not expire), increments the
	// list's version if it deleted any, and returns how many it deleted.
	PruneRevokedSerials(ctx context.Context, authority string, before time.Time) (int, error)
}
