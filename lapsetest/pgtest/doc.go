// Package pgtest starts throwaway PostgreSQL servers for tests.
//
// [Start] runs initdb into a fresh temporary directory, starts the server
// on a free loopback TCP port and removes it when the test ends. [Shared]
// hands every test of a package the same server, which [Main] removes after
// the package's tests have run:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		srv := pgtest.Shared(t)
//		db := srv.CreateDatabase(t)
//		conn := srv.Conn(t, srv.User, srv.Password, db)
//		...
//	}
//
// The server binaries (initdb and postgres) are looked up on PATH and then
// under /usr/lib/postgresql/*/bin, newest version first. When they are
// missing the test is skipped with the command that installs them, or
// fails if the environment variable CI is set.
//
// PostgreSQL refuses to run as root. When the tests run as root the
// server runs as the "postgres" user if the system has one, else as
// "nobody", and its directory is handed to that user.
//
// The server is tuned for tests, not for keeping data: fsync is off. The
// superuser logs in with a password over TCP (scram-sha-256), so password
// checks such as a role's VALID UNTIL apply as in production; the unix
// socket in the temporary directory trusts every local user.
package pgtest
