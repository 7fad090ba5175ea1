package postgres

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// masked replaces secrets in error messages.
const masked = "xxxxx"

// masker hides the admin DSN and passwords in errors.
type masker struct {
	secrets []string // longest first, so that a secret inside another is masked whole
}

func newMasker(dsn string, cfg pgconn.Config) masker {
	secrets := []string{dsn, cfg.Password}
	secrets = slices.DeleteFunc(secrets, func(s string) bool { return s == "" })
	slices.SortFunc(secrets, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	return masker{secrets: slices.Compact(secrets)}
}

// with returns a masker that also hides extra.
func (m masker) with(extra ...string) masker {
	secrets := slices.Concat(m.secrets, extra)
	secrets = slices.DeleteFunc(secrets, func(s string) bool { return s == "" })
	slices.SortFunc(secrets, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
	return masker{secrets: secrets}
}

// error returns err unchanged if no message in its tree shows a secret.
// Otherwise it returns an error with the secrets masked in its message that
// unwraps only to the context error, if any: the original errors would
// still show the secret.
func (m masker) error(err error) error {
	if err == nil || !m.leaks(err) {
		return err
	}
	me := &maskedError{msg: m.string(err.Error())}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		me.kind = context.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		me.kind = context.Canceled
	}
	return me
}

// leaks reports whether the message of err or of any error it wraps
// contains a secret.
func (m masker) leaks(err error) bool {
	if m.contains(err.Error()) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		if inner := u.Unwrap(); inner != nil {
			return m.leaks(inner)
		}
	case interface{ Unwrap() []error }:
		for _, inner := range u.Unwrap() {
			if inner != nil && m.leaks(inner) {
				return true
			}
		}
	}
	return false
}

func (m masker) contains(s string) bool {
	for _, secret := range m.secrets {
		if strings.Contains(s, secret) {
			return true
		}
	}
	return false
}

func (m masker) string(s string) string {
	for _, secret := range m.secrets {
		s = strings.ReplaceAll(s, secret, masked)
	}
	return s
}

// maskedError is an error whose message had a secret masked.
type maskedError struct {
	msg  string
	kind error // context.DeadlineExceeded, context.Canceled or nil
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.kind }
