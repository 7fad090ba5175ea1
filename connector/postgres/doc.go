// Package postgres grants time-bound access to a PostgreSQL database: each
// grant becomes a temporary login role that PostgreSQL itself stops
// accepting at the grant's expiry, and that revocation removes together
// with its live sessions.
//
// # Roles
//
// A resource's role names existing database roles in its settings
// ([RoleSettings], decoded by [Connector.DecodeRole]):
//
//	roles:
//	  - name: read
//	    grant: [orders_read]     # existing roles the login role becomes a member of
//	    connection_limit: 5      # optional; -1 (the default) is unlimited
//	    notes: read replica lag is up to a minute   # optional, shown to the requester
//
// [Connector.Provision] creates, in one transaction, a LOGIN role named
// lapse_<user>_<first 8 characters of the grant id> (see [RoleName]) with a
// random password, VALID UNTIL the grant's expiry, the connection limit,
// membership in the configured roles and a comment that records the grant
// id. The requester gets a postgres:// URL with the password, once. The
// password reaches the server only as a SCRAM-SHA-256 verifier, so it does
// not show in the server's statement log or in pg_stat_activity. The
// verifier uses a single PBKDF2 iteration by default; see
// [Config.SCRAMIterations] for why that is safe for random passwords and
// what the usual 4096 would cost.
//
// Provisioning the same grant again updates the existing role in place
// (new password, expiry, limit and memberships) instead of dropping and
// creating it: a role that already owns objects cannot be dropped without
// deciding what happens to them, and the role's name stays the grant's
// handle either way. Only the newest password works afterwards.
//
// [Connector.Revoke] first disables logins (committed at once, so that no
// session can start while the others are ended), terminates every backend
// of the role and waits until they have exited, then reassigns what the role
// owns to the admin user, drops its remaining privileges and drops the role
// in one transaction. REASSIGN OWNED and DROP OWNED act only in the
// database that the admin DSN connects to: if the role created objects or
// received privileges in another database of the same server, DROP ROLE
// fails and the revocation keeps failing (with logins already disabled and
// sessions ended) until they are removed there.
//
// [Connector.List] finds the roles whose name starts with lapse_ and whose
// comment names a grant; roles without that comment are never listed, so a
// reconciler cannot remove a role that this package did not create.
//
// [Connector.SampleActivity] reports the live sessions of a grant's role,
// from pg_stat_activity, as [lapse.Activity] values of kind "session":
// when the session started, from which address and application, and its
// current or last query, cut to 200 characters. [Connector.Activity]
// returns the same rows as [Session] values.
//
// # The admin connection
//
// [Config.DSN] is the admin connection string. The admin user needs to
// create roles (superuser, or CREATEROLE with ADMIN OPTION on the granted
// roles), to read other sessions' queries (pg_read_all_stats) and to end
// them (pg_signal_backend). The connector keeps at most [Config.MaxConns]
// connections to the target and bounds every call by [Config.Timeout]. The
// DSN and the admin password never appear in errors or logs: errors that
// would contain them are rewritten with the secret masked.
package postgres
