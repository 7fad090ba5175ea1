// Package policy turns a request and the rules in force into a
// [lapse.Decision]. It is pure: no I/O, safe for concurrent use.
package policy
