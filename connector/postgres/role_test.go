package postgres_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector/postgres"
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
	five, unlimited := 5, -1
	tests := []struct {
		name    string
		src     string
		want    postgres.RoleSettings
		wantErr string
	}{
		{
			name: "full",
			src:  "grant: [orders_read, Audit Readers]\nconnection_limit: 5\nnotes: lag up to a minute\n",
			want: postgres.RoleSettings{Grant: []string{"orders_read", "Audit Readers"}, ConnectionLimit: &five, Notes: "lag up to a minute"},
		},
		{
			name: "unlimited",
			src:  "grant: [orders_read]\nconnection_limit: -1\n",
			want: postgres.RoleSettings{Grant: []string{"orders_read"}, ConnectionLimit: &unlimited},
		},
		{name: "minimal", src: "grant: [pg_read_all_data]\n", want: postgres.RoleSettings{Grant: []string{"pg_read_all_data"}}},
		{name: "unknown key", src: "grant: [a]\nconection_limit: 5\n", wantErr: "conection_limit"},
		{name: "no grant", src: "connection_limit: 5\n", wantErr: "at least one"},
		{name: "empty grant", src: "grant: []\n", wantErr: "at least one"},
		{name: "empty name", src: "grant: ['']\n", wantErr: "empty role name"},
		{name: "long name", src: "grant: [" + strings.Repeat("a", 64) + "]\n", wantErr: "longer than 63"},
		{name: "duplicate", src: "grant: [a, b, a]\n", wantErr: "twice"},
		{name: "public", src: "grant: [PUBLIC]\n", wantErr: "can be granted"},
		{name: "temporary role", src: "grant: [lapse_bob_1234abcd]\n", wantErr: "temporary role"},
		{name: "zero limit", src: "grant: [a]\nconnection_limit: 0\n", wantErr: "connection_limit"},
		{name: "negative limit", src: "grant: [a]\nconnection_limit: -2\n", wantErr: "connection_limit"},
		{name: "limit not a number", src: "grant: [a]\nconnection_limit: many\n", wantErr: "many"},
	}
	c, err := postgres.New(postgres.Config{Name: "x", DSN: "postgres://u:p@127.0.0.1:1/db"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.DecodeRole(yamlDecoder(tt.src))
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, lapse.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want an invalid-input error mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRoleName(t *testing.T) {
	tests := []struct {
		user, id, want string
	}{
		{"alice", "0b9c5c1e-7d2a-4a8e-9d0f-123456789abc", "lapse_alice_0b9c5c1e"},
		{"Alice.Smith@example.com", "01HZX3K8Q9", "lapse_alice_smith_example_com_01hzx3k8"},
		{`o'brien"; drop table x;--`, "abc", "lapse_o_brien_drop_table_x_abc"},
		{"ünïcode", "12345678", "lapse_n_code_12345678"},
		{"", "12345678", "lapse_user_12345678"},
		{"???", "12345678", "lapse_user_12345678"},
		{strings.Repeat("a", 100), "12345678", "lapse_" + strings.Repeat("a", 48) + "_12345678"},
		{strings.Repeat("a", 47) + "-b", "12345678", "lapse_" + strings.Repeat("a", 47) + "_12345678"},
	}
	for _, tt := range tests {
		got, err := postgres.RoleName(tt.user, tt.id)
		if err != nil {
			t.Errorf("RoleName(%q, %q): %v", tt.user, tt.id, err)
			continue
		}
		if got != tt.want {
			t.Errorf("RoleName(%q, %q) = %q, want %q", tt.user, tt.id, got, tt.want)
		}
		if len(got) > 63 {
			t.Errorf("RoleName(%q, %q) is %d bytes", tt.user, tt.id, len(got))
		}
	}
	if _, err := postgres.RoleName("bob", "---"); !errors.Is(err, lapse.ErrInvalid) {
		t.Errorf("RoleName with an id without letters or digits: err = %v, want invalid", err)
	}
}
