package postgres

import (
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector"
)

// RolePrefix starts the name of every role the connector creates.
const RolePrefix = "lapse_"

// maxIdentifier is PostgreSQL's limit on identifiers, in bytes
// (NAMEDATALEN-1); longer names are truncated by the server.
const maxIdentifier = 63

// grantIDChars is how many characters of the grant id go into a role name.
const grantIDChars = 8

// maxNotes bounds the length of [RoleSettings.Notes].
const maxNotes = 2000

// RoleSettings are the settings of one role of a resource on a postgres
// connector.
type RoleSettings struct {
	// Grant lists existing database roles that the temporary login role
	// becomes a member of, inheriting their privileges. Required.
	Grant []string `yaml:"grant"`
	// ConnectionLimit caps the login role's concurrent sessions; nil or -1
	// means no limit.
	ConnectionLimit *int `yaml:"connection_limit"`
	// Notes are shown to the requester with the credentials.
	Notes string `yaml:"notes"`
}

// DecodeRole decodes a role's settings strictly with decode, checks them and
// returns a [RoleSettings] value.
func (c *Connector) DecodeRole(decode func(v any) error) (any, error) {
	return connector.DecodeRole[RoleSettings]("postgres role settings", decode)
}

// Validate checks the settings. Errors are of kind [lapse.ErrInvalid].
func (s RoleSettings) Validate() error {
	if len(s.Grant) == 0 {
		return lapse.Invalidf("postgres role settings: grant must name at least one existing database role")
	}
	for i, name := range s.Grant {
		if err := checkGrantedRole(name); err != nil {
			return err
		}
		if slices.Contains(s.Grant[:i], name) {
			return lapse.Invalidf("postgres role settings: grant names %q twice", name)
		}
	}
	if l := s.ConnectionLimit; l != nil && *l != -1 && *l < 1 {
		return lapse.Invalidf("postgres role settings: connection_limit must be -1 (no limit) or at least 1, got %d", *l)
	}
	if len(s.Notes) > maxNotes {
		return lapse.Invalidf("postgres role settings: notes are longer than %d bytes", maxNotes)
	}
	if strings.ContainsRune(s.Notes, 0) || !utf8.ValidString(s.Notes) {
		return lapse.Invalidf("postgres role settings: notes must be UTF-8 text without NUL characters")
	}
	return nil
}

// connectionLimit returns the limit for CONNECTION LIMIT.
func (s RoleSettings) connectionLimit() int {
	if s.ConnectionLimit == nil {
		return -1
	}
	return *s.ConnectionLimit
}

// checkGrantedRole checks the name of a role to grant. Names are used as
// written, case included, the way a quoted identifier is.
func checkGrantedRole(name string) error {
	switch {
	case name == "":
		return lapse.Invalidf("postgres role settings: grant has an empty role name")
	case len(name) > maxIdentifier:
		return lapse.Invalidf("postgres role settings: role name %q is longer than %d bytes", name, maxIdentifier)
	case strings.ContainsRune(name, 0) || !utf8.ValidString(name):
		return lapse.Invalidf("postgres role settings: role name %q must be UTF-8 without NUL characters", name)
	case strings.EqualFold(name, "public"):
		return lapse.Invalidf("postgres role settings: %q is not a role that can be granted", name)
	case strings.HasPrefix(name, RolePrefix):
		return lapse.Invalidf("postgres role settings: %q is a temporary role of Lapse and cannot be granted", name)
	}
	return nil
}

// settingsOf returns the grant's settings, checked.
func settingsOf(g lapse.Grant) (RoleSettings, error) {
	var s RoleSettings
	switch v := g.Settings.(type) {
	case RoleSettings:
		s = v
	case *RoleSettings:
		if v == nil {
			return s, lapse.Invalidf("grant %s has no postgres role settings", g.ID)
		}
		s = *v
	default:
		return s, lapse.Invalidf("grant %s has settings of type %T, not postgres role settings", g.ID, g.Settings)
	}
	return s, s.Validate()
}

// RoleName returns the name of the login role for a grant of user with
// the given id: lapse_<user>_<first 8 characters of the id>. Both parts
// are reduced to lower-case letters, digits and underscores, and the user
// part is shortened so that the name fits PostgreSQL's 63 bytes.
func RoleName(user, grantID string) (string, error) {
	id := sanitize(grantID)
	if id == "" {
		return "", lapse.Invalidf("grant id %q has no letters or digits", grantID)
	}
	if len(id) > grantIDChars {
		id = id[:grantIDChars]
	}
	u := sanitize(user)
	if u == "" {
		u = "user"
	}
	if room := maxIdentifier - len(RolePrefix) - 1 - len(id); len(u) > room {
		u = strings.TrimRight(u[:room], "_")
	}
	return RolePrefix + u + "_" + id, nil
}

// sanitize lower-cases s and replaces each run of characters other than
// a-z, 0-9 and _ with one underscore, trimming underscores at both ends.
func sanitize(s string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			under = false
			continue
		}
		if !under {
			b.WriteByte('_')
			under = true
		}
	}
	return strings.Trim(b.String(), "_")
}

// checkRef checks that ref names a role this connector could have created,
// so that a damaged ref can never drop another role.
func checkRef(ref string) error {
	if !strings.HasPrefix(ref, RolePrefix) || len(ref) > maxIdentifier || len(ref) <= len(RolePrefix) {
		return lapse.Invalidf("%q is not the name of a role created by Lapse", ref)
	}
	for _, r := range ref {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return lapse.Invalidf("%q is not the name of a role created by Lapse", ref)
		}
	}
	return nil
}

// roleOf returns the grant's role name: its Ref, or the name Provision
// would have chosen if the grant has none yet.
func roleOf(g lapse.Grant) (string, error) {
	if g.ID == "" {
		return "", lapse.Invalidf("grant has no id")
	}
	if g.Ref != "" {
		return g.Ref, checkRef(g.Ref)
	}
	if g.User == "" {
		return "", lapse.Invalidf("grant %s has no user", g.ID)
	}
	return RoleName(g.User, g.ID)
}

// commentPrefix starts the comment on every role the connector creates;
// the grant id follows.
const commentPrefix = "lapse grant "

// roleComment returns the comment that marks a role as the grant's.
func roleComment(grantID string) string { return commentPrefix + grantID }

// grantOfComment returns the grant id in a role comment, or false if the
// comment is not one of ours.
func grantOfComment(comment *string) (string, bool) {
	if comment == nil {
		return "", false
	}
	id, ok := strings.CutPrefix(*comment, commentPrefix)
	return id, ok && id != ""
}
