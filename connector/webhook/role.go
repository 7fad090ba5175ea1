package webhook

import (
	"strings"
	"unicode/utf8"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector"
)

// Limits on [RoleSettings.Params].
const (
	maxParams     = 64
	maxParamKey   = 128
	maxParamValue = 4096
)

// RoleSettings are the settings of one role of a resource on a webhook
// connector.
type RoleSettings struct {
	// Params are passed unchanged to the receiver in the "params" field of
	// every call for a grant of the role, such as the group to add the user
	// to. Optional.
	Params map[string]string `yaml:"params"`
}

// DecodeRole decodes a role's settings strictly with decode, checks them and
// returns a [RoleSettings] value. It uses no state of the connector, so it
// may be called on a zero Connector.
func (c *Connector) DecodeRole(decode func(v any) error) (any, error) {
	return connector.DecodeRole[RoleSettings]("webhook role settings", decode)
}

// Validate checks the settings. Errors are of kind [lapse.ErrInvalid].
func (s RoleSettings) Validate() error {
	if len(s.Params) > maxParams {
		return lapse.Invalidf("webhook role settings: params has %d keys, at most %d are allowed", len(s.Params), maxParams)
	}
	for k, v := range s.Params {
		switch {
		case k == "":
			return lapse.Invalidf("webhook role settings: params has an empty key")
		case len(k) > maxParamKey:
			return lapse.Invalidf("webhook role settings: params key %.20q... is longer than %d bytes", k, maxParamKey)
		case !isText(k):
			return lapse.Invalidf("webhook role settings: params key %q must be UTF-8 text without control characters", k)
		case len(v) > maxParamValue:
			return lapse.Invalidf("webhook role settings: params %q is longer than %d bytes", k, maxParamValue)
		case !utf8.ValidString(v) || strings.ContainsRune(v, 0):
			return lapse.Invalidf("webhook role settings: params %q must be UTF-8 text without NUL characters", k)
		}
	}
	return nil
}

// isText reports whether s is valid UTF-8 without control characters.
func isText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// settingsOf returns the grant's settings, checked. A grant without
// settings has no params.
func settingsOf(g lapse.Grant) (RoleSettings, error) {
	var s RoleSettings
	switch v := g.Settings.(type) {
	case nil:
		return s, nil
	case RoleSettings:
		s = v
	case *RoleSettings:
		if v != nil {
			s = *v
		}
	default:
		return s, lapse.Invalidf("grant %s has settings of type %T, not webhook role settings", g.ID, g.Settings)
	}
	return s, s.Validate()
}
