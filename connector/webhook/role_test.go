package webhook_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector/webhook"
)

// yamlDecoder decodes src strictly, the way the configuration loader does.
func yamlDecoder(src string) func(v any) error {
	return func(v any) error {
		dec := yaml.NewDecoder(bytes.NewBufferString(src))
		dec.KnownFields(true)
		return dec.Decode(v)
	}
}

func TestDecodeRole(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		src     string
		decode  func(v any) error
		want    webhook.RoleSettings
		wantErr string
	}{
		{name: "params", src: "params: {group: billing-admins, ttl: 5, ro: true}\n",
			want: webhook.RoleSettings{Params: map[string]string{"group": "billing-admins", "ttl": "5", "ro": "true"}}},
		{name: "none", decode: func(any) error { return nil }},
		{name: "empty params", src: "params: {}\n", want: webhook.RoleSettings{Params: map[string]string{}}},
		{name: "unknown key", src: "params: {a: b}\nurl: https://x\n", wantErr: "url"},
		{name: "misspelt", src: "param: {a: b}\n", wantErr: "param"},
		{name: "nested value", src: "params: {a: {b: c}}\n", wantErr: "cannot unmarshal"},
		{name: "list", src: "params: [a, b]\n", wantErr: "cannot unmarshal"},
		{name: "empty key", src: "params: {'': b}\n", wantErr: "empty key"},
		{name: "control in key", src: "params: {\"a\\nb\": c}\n", wantErr: "control characters"},
		{name: "long value", src: "params: {a: " + strings.Repeat("x", 5000) + "}\n", wantErr: "longer than 4096"},
	}
	var c webhook.Connector // DecodeRole uses no state
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			decode := tt.decode
			if decode == nil {
				decode = yamlDecoder(tt.src)
			}
			got, err := c.DecodeRole(decode)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, lapse.ErrInvalid) {
					t.Fatalf("DecodeRole: %v, want an invalid-input error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeRole: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTooManyParams(t *testing.T) {
	t.Parallel()
	s := webhook.RoleSettings{Params: map[string]string{}}
	for i := range 65 {
		s.Params[strings.Repeat("k", i+1)] = "v"
	}
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "at most 64") {
		t.Errorf("Validate with 65 params: %v", err)
	}
}
