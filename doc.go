// Package lapse holds the nouns and rules of just-in-time access: an access
// [Request] and the grant it becomes, the request state machine, the
// [AuditEvent] chain, the error kinds, and the contracts that several
// packages share ([Store], [Connector], [Decider], [Clock]).
//
// The package does no I/O. Every state change is a pure method on a
// [Request] value that either returns the new value or an error and leaves
// the original untouched; callers persist the result together with the
// [AuditEvent] that records it, in one store transaction.
package lapse
