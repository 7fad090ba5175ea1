// Package lapsetest holds test doubles and shared test suites for Lapse:
// a manual [Clock], the store conformance suite, and helpers that start real
// programs (PostgreSQL, sshd, Chromium) for integration tests.
package lapsetest
