package ssh

import (
	"net/netip"
	"slices"
	"strings"
	"unicode"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector"
)

// extensions are the certificate extensions that OpenSSH knows and that a
// role may list. A certificate carries only the extensions its role lists,
// so a shell without a terminal, and no forwarding, is the default.
var extensions = []string{
	"no-touch-required",
	"permit-X11-forwarding",
	"permit-agent-forwarding",
	"permit-port-forwarding",
	"permit-pty",
	"permit-user-rc",
}

// KnownExtensions returns the extension names a role may list, sorted.
func KnownExtensions() []string { return slices.Clone(extensions) }

// maxPrincipal bounds the length of one principal, in bytes.
const maxPrincipal = 255

// RoleSettings are the settings of one role of a resource on an ssh
// connector.
type RoleSettings struct {
	// Principals are the names the certificate is valid for: the login
	// users, or the names sshd's AuthorizedPrincipalsFile lists. Required.
	Principals []string `yaml:"principals"`
	// Extensions are the OpenSSH certificate extensions to grant, such as
	// permit-pty and permit-port-forwarding; see [KnownExtensions]. None
	// by default.
	Extensions []string `yaml:"extensions"`
	// SourceAddress limits where the certificate may be used from: IP
	// addresses or CIDR prefixes, written into the certificate's
	// source-address critical option. Empty means from anywhere.
	SourceAddress []string `yaml:"source_address"`
	// SourceAddressFromRequest binds the certificate to the address the
	// request came from. With SourceAddress also set, that address must be
	// inside it.
	SourceAddressFromRequest bool `yaml:"source_address_from_request"`
}

// DecodeRole decodes a role's settings strictly with decode, checks them and
// returns a [RoleSettings] value. It uses no state of c, so a zero
// Connector may decode.
func (c *Connector) DecodeRole(decode func(v any) error) (any, error) {
	return connector.DecodeRole[RoleSettings]("ssh role settings", decode)
}

// Validate checks the settings. Errors are of kind [lapse.ErrInvalid].
func (s RoleSettings) Validate() error {
	if len(s.Principals) == 0 {
		return lapse.Invalidf("ssh role settings: principals must name at least one login principal")
	}
	for i, p := range s.Principals {
		if err := checkPrincipal(p); err != nil {
			return err
		}
		if slices.Contains(s.Principals[:i], p) {
			return lapse.Invalidf("ssh role settings: principals name %q twice", p)
		}
	}
	for i, e := range s.Extensions {
		if !slices.Contains(extensions, e) {
			return lapse.Invalidf("ssh role settings: unknown extension %q; known: %s", e, strings.Join(extensions, ", "))
		}
		if slices.Contains(s.Extensions[:i], e) {
			return lapse.Invalidf("ssh role settings: extensions name %q twice", e)
		}
	}
	if _, err := sourceAddress(s.SourceAddress); err != nil {
		return err
	}
	return nil
}

// checkPrincipal refuses principals that sshd could not match as one name.
func checkPrincipal(p string) error {
	switch {
	case p == "":
		return lapse.Invalidf("ssh role settings: principals has an empty name")
	case len(p) > maxPrincipal:
		return lapse.Invalidf("ssh role settings: principal %q is longer than %d bytes", p, maxPrincipal)
	case strings.ContainsFunc(p, func(r rune) bool {
		return r == ',' || r == '*' || r == '?' || r == '!' || unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
	}):
		return lapse.Invalidf("ssh role settings: principal %q must not contain spaces, commas, wildcards or control characters", p)
	}
	return nil
}

// sourceAddress returns the value of the source-address critical option
// for the given addresses and prefixes, or "" for none.
func sourceAddress(list []string) (string, error) {
	out := make([]string, 0, len(list))
	for _, a := range list {
		if addr, err := netip.ParseAddr(a); err == nil && addr.Zone() == "" {
			out = append(out, addr.String())
			continue
		}
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return "", lapse.Invalidf("ssh role settings: source_address %q is not an IP address or CIDR prefix", a)
		}
		if p != p.Masked() {
			return "", lapse.Invalidf("ssh role settings: source_address %q has host bits set; did you mean %s?", a, p.Masked())
		}
		out = append(out, p.String())
	}
	return strings.Join(out, ","), nil
}

// requestSource returns the source-address for a certificate bound to the
// request's address, which must lie inside allowed when that is set.
func requestSource(clientIP string, allowed []string) (string, error) {
	addr, err := netip.ParseAddr(clientIP)
	if err != nil {
		return "", lapse.Invalidf("ssh: the role binds certificates to the request's address, and it is unknown")
	}
	addr = addr.Unmap()
	if len(allowed) > 0 {
		in := false
		for _, a := range allowed {
			if p, err := netip.ParsePrefix(a); err == nil && p.Contains(addr) {
				in = true
			} else if b, err := netip.ParseAddr(a); err == nil && b == addr {
				in = true
			}
		}
		if !in {
			return "", lapse.Invalidf("ssh: the request came from %s, outside the role's source_address %v", addr, allowed)
		}
	}
	return netip.PrefixFrom(addr, addr.BitLen()).String(), nil
}

// settingsOf returns the grant's settings, checked.
func settingsOf(g lapse.Grant) (RoleSettings, error) {
	var s RoleSettings
	switch v := g.Settings.(type) {
	case RoleSettings:
		s = v
	case *RoleSettings:
		if v == nil {
			return s, lapse.Invalidf("grant %s has no ssh role settings", g.ID)
		}
		s = *v
	default:
		return s, lapse.Invalidf("grant %s has settings of type %T, not ssh role settings", g.ID, g.Settings)
	}
	return s, s.Validate()
}
