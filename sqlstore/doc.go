// Package sqlstore is the [lapse.Store] on database/sql.
//
// [OpenSQLite] opens an embedded SQLite database (pure Go, no cgo): the
// default for one server. [OpenPostgres] opens a PostgreSQL database (pgx)
// that several servers share. The schema is created and upgraded at open
// by numbered migrations embedded in the binary, one folder per dialect
// with the same numbers (migrations/postgres/00001_init.sql maps the
// types).
//
// # Storage
//
// Times are stored as integer Unix nanoseconds, a zero time as NULL; they
// read back in UTC. Approvals and a pending extension are stored as JSON
// text. The audit table numbers records from 1 without gaps and chains them
// by hash (see [lapse.AuditEvent]); triggers refuse updates and deletes.
// The audit_tree table's one row is the RFC 6962 Merkle tree over the
// records (size, last hash, compact range), moved in the same transaction
// as every append; a write transaction reads it first, locking the row
// where the dialect has several writers, so the log has one sequence with
// no gaps and no forks. audit_checkpoints holds the signed checkpoints,
// append-only. The secrets table holds credentials only as the caller
// sealed them.
//
// # Concurrency
//
// With SQLite, write transactions run one at a time on one connection, so
// they never fail with SQLITE_BUSY under load from many goroutines; reads
// outside a transaction run in parallel on read-only connections and see the
// last committed state. The audit tree is cached between write
// transactions and dropped whenever one fails, so appending costs one insert
// per record and one update of the tree's row per transaction.
//
// With PostgreSQL, several servers write at once and nothing is cached
// between transactions: the database serializes them. UpdateRequest's
// version check turns a lost race into [lapse.ErrConflict], as do
// serialization failures and deadlocks. DueRequests locks the rows it
// returns and skips rows another transaction holds, so each due request is
// claimed by one server. A transaction leaves its audit records in a
// pending table and commits in the same round trip, without any lock that
// other transactions wait for; then a seal, in one short transaction,
// locks the audit tree's one row (SELECT ... FOR UPDATE), which holds the
// head of the log, and chains every committed pending record after it,
// inserts them and stores the extended tree. One seal serves every
// transaction committed before it began, from every server, and the log
// stays one chain and one Merkle tree without gaps or forks; Tx returns
// once its records are sealed. A transaction that only wrote (nothing
// was sent before its commit) is committed together with the others
// committing at that moment, in one database transaction. A trigger
// announces a new due time on [DueChannel] when it is earlier than the
// time every server will look again by (see [Store.NextDue]), which
// [Listener] follows, and [Keys] keeps keys that servers share, sealed.
package sqlstore
