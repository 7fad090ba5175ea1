package signals_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/signals"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/lapse-access/lapse/lapsetest"
)

// writeGeoIP writes a tiny country database. It maps 81.2.69.0/24 to GB,
// 2001:db8::/32 to DE, 192.0.2.0/24 to a record without a country and
// 198.51.100.0/24 to a record with a malformed code.
func writeGeoIP(t *testing.T) string {
	return lapsetest.WriteGeoIP(t, map[string]mmdbtype.Map{
		"81.2.69.0/24":    lapsetest.GeoIPCountry("GB"),
		"2001:db8::/32":   lapsetest.GeoIPCountry("DE"),
		"192.0.2.0/24":    {"continent": mmdbtype.Map{"code": mmdbtype.String("EU")}},
		"198.51.100.0/24": lapsetest.GeoIPCountry("Utopia"),
	})
}

func openGeoIP(t *testing.T) *maxminddb.Reader {
	t.Helper()
	db, err := signals.OpenGeoIP(writeGeoIP(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenGeoIPMissing(t *testing.T) {
	t.Parallel()
	if _, err := signals.OpenGeoIP(filepath.Join(t.TempDir(), "none.mmdb")); err == nil {
		t.Fatal("OpenGeoIP of a missing file: no error")
	}
}

func TestOpenGeoIPNotADatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "junk.mmdb")
	if err := os.WriteFile(path, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := signals.OpenGeoIP(path); err == nil {
		t.Fatal("OpenGeoIP of junk: no error")
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	n := &signals.Network{
		GeoIP:   openGeoIP(t),
		Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48")},
	}
	tests := []struct {
		name string
		ip   netip.Addr
		want lapse.NetworkSignals
	}{
		{"ipv4 country", addr("81.2.69.142"), net4("81.2.69.142", "GB", lapse.FlagFalse)},
		{"ipv6 country", addr("2001:db8::1"), net4("2001:db8::1", "DE", lapse.FlagFalse)},
		{"ipv6 country and trusted", addr("2001:db8:1::7"), net4("2001:db8:1::7", "DE", lapse.FlagTrue)},
		{"mapped ipv4 is unmapped", addr("::ffff:81.2.69.1"), net4("81.2.69.1", "GB", lapse.FlagFalse)},
		{"zone dropped", addr("fe80::1%eth0"), net4("fe80::1", "", lapse.FlagFalse)},
		{"not in database", addr("203.0.113.9"), net4("203.0.113.9", "", lapse.FlagFalse)},
		{"record without country", addr("192.0.2.1"), net4("192.0.2.1", "", lapse.FlagFalse)},
		{"malformed country code", addr("198.51.100.1"), net4("198.51.100.1", "", lapse.FlagFalse)},
		{"trusted without country", addr("10.1.2.3"), net4("10.1.2.3", "", lapse.FlagTrue)},
		{"invalid", netip.Addr{}, lapse.NetworkSignals{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, n.Lookup(tt.ip), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("Lookup(%v) (-want +got):\n%s", tt.ip, diff)
			}
		})
	}
}

func TestLookupWithoutDatabase(t *testing.T) {
	t.Parallel()
	var n signals.Network
	got := n.Lookup(addr("81.2.69.142"))
	if got.Country != "" || got.Trusted != lapse.FlagFalse || got.IP != addr("81.2.69.142") {
		t.Errorf("Lookup without database or networks = %+v", got)
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	proxied := &signals.Network{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
	}}
	direct := &signals.Network{}
	tests := []struct {
		name   string
		n      *signals.Network
		remote string
		xff    []string
		want   string // "" for the zero Addr
	}{
		{"no proxies, no header", direct, "81.2.69.142:51234", nil, "81.2.69.142"},
		{"no proxies, spoofed header ignored", direct, "81.2.69.142:51234", []string{"10.9.9.9"}, "81.2.69.142"},
		{"untrusted peer, spoofed header ignored", proxied, "81.2.69.142:51234", []string{"203.0.113.7"}, "81.2.69.142"},
		{"trusted proxy, client in header", proxied, "10.0.0.2:443", []string{"81.2.69.142"}, "81.2.69.142"},
		{"trusted proxy, no header", proxied, "10.0.0.2:443", nil, "10.0.0.2"},
		{"trusted proxy, blank header", proxied, "10.0.0.2:443", []string{"  "}, "10.0.0.2"},
		{"client spoofs left of real address", proxied, "10.0.0.2:443", []string{"203.0.113.7, 81.2.69.142"}, "81.2.69.142"},
		{"chain of trusted proxies skipped", proxied, "10.0.0.2:443", []string{"203.0.113.7, 81.2.69.142, 10.0.0.9, 10.0.0.8"}, "81.2.69.142"},
		{"several header lines, last is nearest", proxied, "10.0.0.2:443", []string{"203.0.113.7, 81.2.69.142", "10.0.0.9"}, "81.2.69.142"},
		{"all trusted: leftmost", proxied, "10.0.0.2:443", []string{"10.0.0.7, 10.0.0.8"}, "10.0.0.7"},
		{"malformed entry stops at last trusted hop", proxied, "10.0.0.2:443", []string{"81.2.69.142, bogus, 10.0.0.9"}, "10.0.0.9"},
		{"malformed last entry: peer", proxied, "10.0.0.2:443", []string{"81.2.69.142, not-an-ip"}, "10.0.0.2"},
		{"empty entry is malformed", proxied, "10.0.0.2:443", []string{"81.2.69.142,,10.0.0.9"}, "10.0.0.9"},
		{"entry with port", proxied, "10.0.0.2:443", []string{"81.2.69.142:4711"}, "81.2.69.142"},
		{"ipv6 proxy and client", proxied, "[fd00::2]:443", []string{"2001:db8::1"}, "2001:db8::1"},
		{"bracketed ipv6 with port", proxied, "10.0.0.2:443", []string{"[2001:db8::1]:4711"}, "2001:db8::1"},
		{"bracketed ipv6 without port", proxied, "10.0.0.2:443", []string{"[2001:db8::1]"}, "2001:db8::1"},
		{"mapped peer matches ipv4 proxy", proxied, "[::ffff:10.0.0.2]:443", []string{"81.2.69.142"}, "81.2.69.142"},
		{"bare peer address", proxied, "81.2.69.142", nil, "81.2.69.142"},
		{"malformed peer", proxied, "nonsense", []string{"81.2.69.142"}, ""},
		{"empty peer", direct, "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.n.ClientIP(tt.remote, tt.xff)
			var want netip.Addr
			if tt.want != "" {
				want = addr(tt.want)
			}
			if got != want {
				t.Errorf("ClientIP(%q, %q) = %v, want %v", tt.remote, tt.xff, got, want)
			}
		})
	}
}

func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.2:443", "203.0.113.7, 81.2.69.142, 10.0.0.9")
	f.Add("81.2.69.142:51234", "10.0.0.9")
	f.Add("[fd00::2]:443", "[2001:db8::1]:4711,bogus")
	f.Add("10.0.0.2", ",,")
	f.Add("[::ffff:10.0.0.2]:443", "fe80::1%eth0, ::ffff:1.2.3.4")
	n := &signals.Network{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
	}}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		got := n.ClientIP(remote, []string{xff})
		peer := (&signals.Network{}).ClientIP(remote, nil)
		if !peer.IsValid() {
			if got.IsValid() {
				t.Fatalf("ClientIP(%q, %q) = %v from a malformed peer", remote, xff, got)
			}
			return
		}
		if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
			t.Fatalf("ClientIP(%q, %q) = %v, not a plain address", remote, xff, got)
		}
		if !n.TrustedProxies[0].Contains(peer) && !n.TrustedProxies[1].Contains(peer) && got != peer {
			t.Fatalf("ClientIP(%q, %q) = %v, believed the header of untrusted peer %v", remote, xff, got, peer)
		}
	})
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func net4(ip, country string, trusted lapse.Flag) lapse.NetworkSignals {
	return lapse.NetworkSignals{IP: addr(ip), Country: country, Trusted: trusted}
}
