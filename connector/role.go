package connector

import (
	"fmt"

	"github.com/lapse-access/lapse"
)

// DecodeRole decodes a role's settings of type S strictly with decode,
// checks them with their Validate method and returns the S value, for a
// connector's [lapse.RoleDecoder]. name says what is decoded, such as
// "ssh role settings"; it prefixes a decoding error, which is of kind
// [lapse.ErrInvalid]. Errors of Validate are returned as they are.
func DecodeRole[S interface{ Validate() error }](name string, decode func(v any) error) (any, error) {
	var s S
	if err := decode(&s); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", lapse.ErrInvalid, name, err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return s, nil
}
