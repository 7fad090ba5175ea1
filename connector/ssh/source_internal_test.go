package ssh

import (
	"errors"
	"testing"

	"github.com/lapse-access/lapse"
)

func TestRequestSource(t *testing.T) {
	tests := []struct {
		ip      string
		allowed []string
		want    string
		bad     bool
	}{
		{ip: "192.0.2.7", want: "192.0.2.7/32"},
		{ip: "::ffff:192.0.2.7", want: "192.0.2.7/32"},
		{ip: "2001:db8::1", want: "2001:db8::1/128"},
		{ip: "192.0.2.7", allowed: []string{"192.0.2.0/24"}, want: "192.0.2.7/32"},
		{ip: "192.0.2.7", allowed: []string{"192.0.2.7"}, want: "192.0.2.7/32"},
		{ip: "198.51.100.1", allowed: []string{"192.0.2.0/24"}, bad: true},
		{ip: "", bad: true},
	}
	for _, tt := range tests {
		got, err := requestSource(tt.ip, tt.allowed)
		if tt.bad {
			if !errors.Is(err, lapse.ErrInvalid) {
				t.Errorf("requestSource(%q, %v) = %q, %v; want an invalid-input error", tt.ip, tt.allowed, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("requestSource(%q, %v) = %q, %v; want %q", tt.ip, tt.allowed, got, err, tt.want)
		}
	}
}
