package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lapse-access/lapse"
)

// maxGrantID bounds the length of a grant id, which the role's comment
// keeps.
const maxGrantID = 200

// SQLSTATE codes the connector acts on.
const (
	codeUndefinedObject       = "42704" // a role does not exist
	codeInsufficientPrivilege = "42501"
	codeDependentObjects      = "2BP01" // DROP ROLE: objects still depend on the role
)

// checkGrant checks the fields Provision needs.
func checkGrant(g lapse.Grant) error {
	switch {
	case g.ID == "":
		return lapse.Invalidf("grant has no id")
	case len(g.ID) > maxGrantID || strings.ContainsRune(g.ID, 0) || !utf8.ValidString(g.ID):
		return lapse.Invalidf("grant id %q is not up to %d bytes of UTF-8 text", g.ID, maxGrantID)
	case g.User == "":
		return lapse.Invalidf("grant %s has no user", g.ID)
	case g.ExpiresAt.IsZero():
		return lapse.Invalidf("grant %s has no expiry", g.ID)
	}
	return nil
}

// roleState is what Provision finds in the target before changing it.
type roleState struct {
	oid     *uint32 // nil: the role does not exist
	comment *string
	missing []string // configured roles that do not exist
	member  []string // roles the login role is a member of now
}

const provisionCheckSQL = `
WITH r AS (SELECT oid FROM pg_roles WHERE rolname = $1)
SELECT
  (SELECT oid FROM r),
  (SELECT shobj_description(oid, 'pg_authid') FROM r),
  ARRAY(SELECT g FROM unnest($2::text[]) AS g WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = g)),
  ARRAY(SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid
        WHERE m.member = (SELECT oid FROM r))`

// Provision creates the grant's login role, or brings an existing one up
// to date, in one transaction. The returned credentials hold a new
// password; earlier ones stop working. A configured role that does not
// exist, a role name taken by another grant, and missing privileges are
// marked [lapse.Unrecoverable].
func (c *Connector) Provision(ctx context.Context, g lapse.Grant) (lapse.Provisioned, error) {
	start := time.Now()
	set, err := settingsOf(g)
	if err == nil {
		err = checkGrant(g)
	}
	var role string
	if err == nil {
		role, err = RoleName(g.User, g.ID)
	}
	if err != nil {
		return lapse.Provisioned{}, lapse.Unrecoverable(fmt.Errorf("provision on %s: %w", c.name, err))
	}
	password := newPassword()
	verifier, err := scramVerifier(password, c.iterations)
	if err != nil {
		return lapse.Provisioned{}, fmt.Errorf("provision role %s on %s: %w", role, c.name, err)
	}
	comment, err := literal(roleComment(g.ID))
	if err != nil {
		return lapse.Provisioned{}, lapse.Unrecoverable(fmt.Errorf("provision role %s on %s: %w", role, c.name, err))
	}
	var created bool
	err = c.do(ctx, func(ctx context.Context, pool *pgxpool.Pool) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var st roleState
			err := tx.QueryRow(ctx, provisionCheckSQL, role, set.Grant).Scan(&st.oid, &st.comment, &st.missing, &st.member)
			if err != nil {
				return err
			}
			if len(st.missing) > 0 {
				return lapse.Unrecoverable(lapse.NotFoundf("the roles to grant do not exist: %s", strings.Join(st.missing, ", ")))
			}
			if st.oid != nil {
				if id, ok := grantOfComment(st.comment); !ok || id != g.ID {
					return lapse.Unrecoverable(lapse.Conflictf("role %s exists and is not this grant's", role))
				}
			}
			created = st.oid == nil
			_, err = tx.Exec(ctx, provisionSQL(role, verifier, comment, g.ExpiresAt, set, st))
			return err
		})
	})
	if err != nil {
		if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
			switch pgErr.Code {
			case codeUndefinedObject, codeInsufficientPrivilege:
				err = lapse.Unrecoverable(err)
			}
		}
		return lapse.Provisioned{}, fmt.Errorf("provision role %s on %s: %w", role, c.name, c.mask.with(password).error(err))
	}
	c.logger.Info("role provisioned", logRole, role, logGrant, g.ID, logCreated, created, logElapsed, time.Since(start))

	url := c.target.url(role, password)
	instructions := "psql '" + url + "'"
	if set.Notes != "" {
		instructions += "\n\n" + set.Notes
	}
	return lapse.Provisioned{
		Ref: role,
		Credentials: &lapse.Credentials{
			Kind:         "postgres_url",
			Value:        url,
			Instructions: instructions,
		},
		Details: map[string]string{
			"role":             role,
			"granted":          strings.Join(set.Grant, ","),
			"connection_limit": strconv.Itoa(set.connectionLimit()),
			"valid_until":      g.ExpiresAt.UTC().Format(time.RFC3339Nano),
			"database":         c.target.database,
			"created":          strconv.FormatBool(created),
		},
	}, nil
}

// provisionSQL returns the statements that create the role, or update it
// if st says it exists, as one multi-statement string: one round trip.
func provisionSQL(role, verifier, comment string, expires time.Time, set RoleSettings, st roleState) string {
	r := ident(role)
	// The verifier and timestamp hold only characters that need no
	// escaping, but they are quoted like any literal.
	pw, _ := literal(verifier)
	until, _ := literal(timestamp(expires))
	attrs := fmt.Sprintf("LOGIN INHERIT CONNECTION LIMIT %d PASSWORD %s VALID UNTIL %s", set.connectionLimit(), pw, until)
	var stmts []string
	if st.oid == nil {
		stmts = append(stmts,
			"CREATE ROLE "+r+" "+attrs,
			"COMMENT ON ROLE "+r+" IS "+comment,
		)
	} else {
		stmts = append(stmts, "ALTER ROLE "+r+" "+attrs)
	}
	var grant, revoke []string
	for _, name := range set.Grant {
		if !slices.Contains(st.member, name) {
			grant = append(grant, ident(name))
		}
	}
	for _, name := range st.member {
		if !slices.Contains(set.Grant, name) {
			revoke = append(revoke, ident(name))
		}
	}
	if len(grant) > 0 {
		stmts = append(stmts, "GRANT "+strings.Join(grant, ", ")+" TO "+r)
	}
	if len(revoke) > 0 {
		stmts = append(stmts, "REVOKE "+strings.Join(revoke, ", ")+" FROM "+r)
	}
	return strings.Join(stmts, ";\n")
}

// Extend moves the role's VALID UNTIL to g.ExpiresAt. It returns no new
// credentials: the password stays the same. A role that is missing or is
// not the grant's is an [lapse.ErrNotFound] error marked
// [lapse.Unrecoverable].
func (c *Connector) Extend(ctx context.Context, g lapse.Grant) (*lapse.Credentials, error) {
	role, err := roleOf(g)
	if err == nil && g.ExpiresAt.IsZero() {
		err = lapse.Invalidf("grant %s has no expiry", g.ID)
	}
	if err != nil {
		return nil, lapse.Unrecoverable(fmt.Errorf("extend on %s: %w", c.name, err))
	}
	until, _ := literal(timestamp(g.ExpiresAt))
	err = c.do(ctx, func(ctx context.Context, pool *pgxpool.Pool) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			var comment *string
			err := tx.QueryRow(ctx, `SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = $1`, role).Scan(&comment)
			if errors.Is(err, pgx.ErrNoRows) {
				return lapse.Unrecoverable(lapse.NotFoundf("role %s does not exist", role))
			}
			if err != nil {
				return err
			}
			if id, ok := grantOfComment(comment); !ok || id != g.ID {
				return lapse.Unrecoverable(lapse.NotFoundf("role %s is not this grant's", role))
			}
			_, err = tx.Exec(ctx, "ALTER ROLE "+ident(role)+" VALID UNTIL "+until)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("extend role %s on %s: %w", role, c.name, err)
	}
	c.logger.Info("role extended", logRole, role, logGrant, g.ID, logUntil, g.ExpiresAt)
	return nil, nil
}
