package pgtest

import "testing"

func TestMajorVersion(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"debian", "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n", 15},
		{"plain", "postgres (PostgreSQL) 17.2\n", 17},
		{"old", "postgres (PostgreSQL) 9.6.24\n", 9},
		{"devel", "postgres (PostgreSQL) 18devel\n", 18},
		{"garbage", "hello", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := majorVersion(tt.in); got != tt.want {
				t.Errorf("majorVersion(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int // sign
	}{
		{"15", "9.6", 1},
		{"9.6", "15", -1},
		{"16", "16", 0},
		{"9.6", "9.5", 1},
	}
	for _, tt := range tests {
		got := compareVersions(tt.a, tt.b)
		if (got > 0) != (tt.want > 0) || (got < 0) != (tt.want < 0) {
			t.Errorf("compareVersions(%q, %q) = %d, want sign %d", tt.a, tt.b, got, tt.want)
		}
	}
}
