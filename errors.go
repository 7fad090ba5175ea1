package lapse

import (
	"errors"
	"fmt"
)

// Error kinds that callers branch on. The HTTP layer maps them to status
// codes; everything else wraps them with context.
var (
	// ErrNotFound reports that a request, resource, role or user does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid reports bad input: the caller must change what it sent.
	ErrInvalid = errors.New("invalid input")
	// ErrForbidden reports that the caller may not do what it asked.
	ErrForbidden = errors.New("forbidden")
	// ErrConflict reports that the request changed concurrently or the action
	// was already done (an approver approving twice).
	ErrConflict = errors.New("conflict")
	// ErrUnauthenticated reports a missing or unknown credential.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrGone reports something that existed once and is no longer available,
	// such as credentials that were already handed out.
	ErrGone = errors.New("gone")
)

// TransitionError reports an action that the state machine refuses in the
// request's current state. It unwraps to [ErrConflict].
type TransitionError struct {
	Action Action
	From   State
	To     State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s a request that is %s (%s to %s is not allowed)", e.Action, e.From, e.From, e.To)
}

// Unwrap makes a TransitionError match [ErrConflict].
func (e *TransitionError) Unwrap() error { return ErrConflict }

// Invalidf returns an error of kind [ErrInvalid] with a formatted message.
func Invalidf(format string, args ...any) error {
	return &kindError{kind: ErrInvalid, msg: fmt.Sprintf(format, args...)}
}

// NotFoundf returns an error of kind [ErrNotFound] with a formatted message.
func NotFoundf(format string, args ...any) error {
	return &kindError{kind: ErrNotFound, msg: fmt.Sprintf(format, args...)}
}

// Forbiddenf returns an error of kind [ErrForbidden] with a formatted message.
func Forbiddenf(format string, args ...any) error {
	return &kindError{kind: ErrForbidden, msg: fmt.Sprintf(format, args...)}
}

// Conflictf returns an error of kind [ErrConflict] with a formatted message.
func Conflictf(format string, args ...any) error {
	return &kindError{kind: ErrConflict, msg: fmt.Sprintf(format, args...)}
}

// kindError is a message that matches one error kind without repeating the
// kind's own text.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// UnrecoverableError marks a connector error that retrying cannot fix, such
// as a role that names a database role which does not exist.
type UnrecoverableError struct{ Err error }

func (e *UnrecoverableError) Error() string { return e.Err.Error() }
func (e *UnrecoverableError) Unwrap() error { return e.Err }

// Unrecoverable marks err as not worth retrying.
func Unrecoverable(err error) error {
	if err == nil {
		return nil
	}
	return &UnrecoverableError{Err: err}
}

// IsUnrecoverable reports whether err, or an error it wraps, was marked with
// [Unrecoverable].
func IsUnrecoverable(err error) bool {
	var u *UnrecoverableError
	return errors.As(err, &u)
}
