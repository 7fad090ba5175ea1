// Package broker holds Lapse's use cases: submit, approve, deny, cancel,
// release, revoke, extend, and the reads around them. Each use case checks
// who may do it, asks the [lapse.Decider], applies the state machine, and
// stores the change with its audit record in one transaction. Connector work
// that follows a change (provisioning, revocation) is run through the
// [Executor] so that it is claimed, retried and recorded the same way as the
// scheduler's.
package broker
