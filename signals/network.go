package signals

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/lapse-access/lapse"
	"github.com/oschwald/maxminddb-golang/v2"
)

// Network derives the network facts of a request. Its fields are read, never
// written, so one Network may serve concurrent requests.
type Network struct {
	// GeoIP maps addresses to countries; nil leaves every country unknown.
	GeoIP *maxminddb.Reader
	// Trusted are the networks whose addresses count as trusted.
	Trusted []netip.Prefix
	// TrustedProxies are the reverse proxies whose X-Forwarded-For header is
	// believed. Without any, the header is ignored.
	TrustedProxies []netip.Prefix
}

// OpenGeoIP opens the MaxMind-format database at path, e.g. a GeoLite2
// Country database. The caller closes it when no Network uses it any more.
func OpenGeoIP(path string) (*maxminddb.Reader, error) {
	db, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open geoip database: %w", err)
	}
	return db, nil
}

// ClientIP returns the address of the client behind a connection whose peer
// is remoteAddr ("host:port", as in http.Request.RemoteAddr; a bare address
// is accepted too) and whose requests carried the X-Forwarded-For header
// values xForwardedFor, in the order received.
//
// The header is believed only when the peer is a trusted proxy. Then its
// entries are walked from the right, skipping trusted proxies, and the first
// address that is not one is the client. When every entry is a trusted
// proxy, the leftmost is the client. A malformed entry stops the walk: the
// last trusted hop before it is the client. ClientIP returns the zero Addr
// when remoteAddr is malformed. IPv4-mapped IPv6 addresses are unmapped and
// zones dropped.
func (n *Network) ClientIP(remoteAddr string, xForwardedFor []string) netip.Addr {
	peer, ok := parseHop(remoteAddr)
	if !ok {
		return netip.Addr{}
	}
	if !n.trustedProxy(peer) {
		return peer
	}
	client := peer
	for i := len(xForwardedFor) - 1; i >= 0; i-- {
		value := xForwardedFor[i]
		if strings.TrimSpace(value) == "" {
			continue
		}
		entries := strings.Split(value, ",")
		for j := len(entries) - 1; j >= 0; j-- {
			hop, ok := parseHop(entries[j])
			if !ok {
				return client
			}
			client = hop
			if !n.trustedProxy(hop) {
				return client
			}
		}
	}
	return client
}

// Lookup returns the network facts of ip: its country when GeoIP is set and
// knows it, and whether it is in a trusted network. An invalid ip gives
// facts that are all unknown.
func (n *Network) Lookup(ip netip.Addr) lapse.NetworkSignals {
	if !ip.IsValid() {
		return lapse.NetworkSignals{}
	}
	ip = normalize(ip)
	return lapse.NetworkSignals{
		IP:      ip,
		Country: n.country(ip),
		Trusted: lapse.FlagOf(contains(n.Trusted, ip)),
	}
}

// country returns the ISO 3166-1 alpha-2 code of ip, or "" when unknown.
func (n *Network) country(ip netip.Addr) string {
	if n.GeoIP == nil {
		return ""
	}
	var code string
	if err := n.GeoIP.Lookup(ip).DecodePath(&code, "country", "iso_code"); err != nil {
		return ""
	}
	code = strings.ToUpper(code)
	if len(code) != 2 || !isLetter(code[0]) || !isLetter(code[1]) {
		return ""
	}
	return code
}

func isLetter(c byte) bool { return 'A' <= c && c <= 'Z' }

func (n *Network) trustedProxy(ip netip.Addr) bool {
	return contains(n.TrustedProxies, ip)
}

func contains(prefixes []netip.Prefix, ip netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// parseHop parses one address as found in RemoteAddr or X-Forwarded-For:
// "1.2.3.4", "1.2.3.4:5678", "2001:db8::1", "[2001:db8::1]" or
// "[2001:db8::1]:5678".
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalize(ap.Addr()), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		return normalize(ip), true
	}
	return netip.Addr{}, false
}

// normalize unmaps IPv4-mapped IPv6 addresses and drops zones, so that they
// match configured prefixes.
func normalize(ip netip.Addr) netip.Addr {
	return ip.Unmap().WithZone("")
}
