package ssh_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector/ssh"
)

// decodeRole decodes YAML role settings strictly, the way the config does.
func decodeRole(src string) (any, error) {
	var c ssh.Connector
	return c.DecodeRole(func(v any) error {
		d := yaml.NewDecoder(bytes.NewReader([]byte(src)))
		d.KnownFields(true)
		return d.Decode(v)
	})
}

func TestDecodeRole(t *testing.T) {
	got, err := decodeRole("principals: [deploy, ops]\nextensions: [permit-pty, permit-port-forwarding]\nsource_address: [10.0.0.0/8, 192.0.2.7, '2001:db8::/32']\n")
	if err != nil {
		t.Fatal(err)
	}
	want := ssh.RoleSettings{
		Principals:    []string{"deploy", "ops"},
		Extensions:    []string{"permit-pty", "permit-port-forwarding"},
		SourceAddress: []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("settings (-want +got):\n%s", diff)
	}
}

func TestDecodeRoleRefuses(t *testing.T) {
	tests := []struct {
		name, src string
	}{
		{"unknown key", "principals: [deploy]\nmax_key_validity: 1h\n"},
		{"missing principals", "extensions: [permit-pty]\n"},
		{"empty principals", "principals: []\n"},
		{"empty principal", "principals: ['']\n"},
		{"principal with comma", "principals: ['a,b']\n"},
		{"principal with space", "principals: ['a b']\n"},
		{"wildcard principal", "principals: ['*']\n"},
		{"duplicate principal", "principals: [deploy, deploy]\n"},
		{"unknown extension", "principals: [deploy]\nextensions: [permit-everything]\n"},
		{"duplicate extension", "principals: [deploy]\nextensions: [permit-pty, permit-pty]\n"},
		{"bad CIDR", "principals: [deploy]\nsource_address: [10.0.0.0/33]\n"},
		{"not an address", "principals: [deploy]\nsource_address: [example.com]\n"},
		{"host bits set", "principals: [deploy]\nsource_address: [10.1.2.3/8]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeRole(tt.src)
			if !errors.Is(err, lapse.ErrInvalid) {
				t.Errorf("DecodeRole(%q) = %v, want an error of kind ErrInvalid", tt.src, err)
			}
		})
	}
}
