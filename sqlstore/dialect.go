package sqlstore

import (
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"
)

//go:embed migrations
var migrationFiles embed.FS

// dialect is what differs between the SQL databases the store runs on. The
// queries are written once, with ? placeholders and portable SQL (ON CONFLICT,
// RETURNING); a dialect adds its migrations, its placeholders and the few
// clauses that differ.
type dialect struct {
	name string
	// goose names the dialect for the migration tool.
	goose goose.Dialect
	// placeholders rewrites a query written with ? placeholders into the
	// dialect's own ($1, $2, ... on PostgreSQL); nil keeps them.
	placeholders func(query string) string
	// lockDue is appended to the due-requests query to lock the rows it
	// returns for the transaction, skipping rows other transactions hold
	// (" FOR UPDATE SKIP LOCKED" on PostgreSQL). SQLite needs none: its one
	// writer transaction is the lock.
	lockDue string
	// lockAudit, if set, is run in a transaction before it reads the head of
	// the audit log, so that concurrent writers append one at a time.
	lockAudit string
	// lockTree is appended to the query that reads the audit tree's row in
	// a write transaction, to lock it until the transaction ends
	// (" FOR UPDATE" on PostgreSQL): every append and checkpoint takes it,
	// so concurrent writers extend one tree, one at a time. SQLite needs
	// none.
	lockTree string
	// deferAudit says that several servers share the database: the store
	// begins and ends write transactions itself (see [Store.sharedTx]), and
	// appends are written when the transaction commits, in the database and
	// in the round trip that commits, so that the lock that serializes
	// every writer of every server is held for the least time.
	deferAudit bool
	// deleteInUpdate says that a statement may delete in a WITH clause
	// and update: UpdateRequest then drops an ending grant's sealed
	// credentials in the statement that updates it.
	deleteInUpdate bool
	// conflict, if set, reports database errors by which a transaction
	// lost to a concurrent one (serialization failure, deadlock); they are
	// returned as [lapse.ErrConflict].
	conflict func(error) bool
	// singleWriter reports that all write transactions run one at a time in
	// this process, so the head of the audit log can be cached between them.
	singleWriter bool
}

// locker returns the option that serializes migrations of several
// servers, or nil where one server owns the database.
func (d *dialect) locker() (goose.ProviderOption, error) {
	if d.singleWriter {
		return nil, nil
	}
	return postgresLocker()
}

// migrations returns the dialect's numbered migrations.
func (d *dialect) migrations() (fs.FS, error) {
	sub, err := fs.Sub(migrationFiles, "migrations/"+d.name)
	if err != nil {
		return nil, fmt.Errorf("migrations for %s: %w", d.name, err)
	}
	return sub, nil
}

// sql returns query in the dialect's placeholders.
func (d *dialect) sql(query string) string {
	if d.placeholders == nil {
		return query
	}
	return d.placeholders(query)
}

var sqliteDialect = &dialect{
	name:         "sqlite",
	goose:        goose.DialectSQLite3,
	singleWriter: true,
}
