package postgres

import (
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgreSQL accepts no bind parameters in utility statements such as
// CREATE ROLE, ALTER ROLE, GRANT and COMMENT. Those statements are built
// from quoted identifiers (ident) and quoted literals (literal); no input
// reaches them any other way.

// ident quotes a role name.
func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// errNUL reports a string that cannot be sent to PostgreSQL.
var errNUL = errors.New("text contains a NUL character")

// literal quotes s as a string constant the way PostgreSQL's
// quote_literal does: quotes doubled, and backslashes doubled in an E”
// string so that the result means the same whatever
// standard_conforming_strings is.
func literal(s string) (string, error) {
	if strings.ContainsRune(s, 0) {
		return "", errNUL
	}
	q := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		q = "E" + strings.ReplaceAll(q, `\`, `\\`)
	}
	return q, nil
}

// timestampLayout writes a timestamptz in UTC to the microsecond, the
// server's precision.
const timestampLayout = "2006-01-02 15:04:05.999999-07"

// timestamp returns t as the text of a timestamptz.
func timestamp(t time.Time) string { return t.UTC().Format(timestampLayout) }
