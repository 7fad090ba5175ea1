package connector_test

import (
	"errors"
	"testing"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector"
)

// settings are role settings that are valid when Name is set.
type settings struct{ Name string }

var errNoName = errors.New("no name")

func (s settings) Validate() error {
	if s.Name == "" {
		return errNoName
	}
	return nil
}

// decodeName returns a decoder that sets the Name of the settings it is
// given.
func decodeName(name string) func(v any) error {
	return func(v any) error {
		v.(*settings).Name = name
		return nil
	}
}

func TestDecodeRole(t *testing.T) {
	t.Parallel()
	errDecode := errors.New(`unknown field "nmae"`)
	tests := []struct {
		name    string
		decode  func(v any) error
		want    any
		wantErr error
		wantMsg string
	}{
		{name: "valid", decode: decodeName("db"), want: settings{Name: "db"}},
		{name: "decoding fails", decode: func(any) error { return errDecode }, wantErr: lapse.ErrInvalid,
			wantMsg: `invalid input: test role settings: unknown field "nmae"`},
		{name: "invalid", decode: decodeName(""), wantErr: errNoName, wantMsg: "no name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := connector.DecodeRole[settings]("test role settings", tt.decode)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || err.Error() != tt.wantMsg || got != nil {
					t.Fatalf("DecodeRole = %v, %v; want nil, %q matching %v", got, err, tt.wantMsg, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("DecodeRole = %#v, %v; want %#v, nil", got, err, tt.want)
			}
		})
	}
}
