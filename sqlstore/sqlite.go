package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"

	"github.com/lapse-access/lapse"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// busyTimeoutMillis is how long a SQLite connection waits for a lock that
// another process holds before it fails with SQLITE_BUSY.
const busyTimeoutMillis = "5000"

// OpenSQLite opens the SQLite database file at path, creating it if needed,
// and migrates it to the current schema.
//
// The database runs in WAL mode with synchronous=NORMAL and foreign keys on.
// Write transactions run one at a time on a single connection and begin
// IMMEDIATE; reads outside transactions use a pool of read-only connections
// that do not wait for the writer. The store assumes it is the only writer
// of the file.
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") || strings.Contains(path, "?") {
		return nil, lapse.Invalidf("open store: %q is not a plain database file path", path)
	}
	wdb, err := sql.Open("sqlite", sqliteDSN(path, url.Values{
		"_journal_mode": {"WAL"},
		"_synchronous":  {"NORMAL"},
		"_txlock":       {"immediate"},
		// The writer keeps the hot part of the tables and indexes in memory:
		// the default 2 MB cache makes every batch read and spill pages.
		"_pragma": {"cache_size(-65536)"},
	}))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	// Connect the writer first: it switches the file to WAL before any
	// reader opens it.
	if err := wdb.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("open store: %w", err), wdb.Close())
	}
	rdb, err := sql.Open("sqlite", sqliteDSN(path, url.Values{"_query_only": {"1"}}))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open store: %w", err), wdb.Close())
	}
	n := max(4, runtime.GOMAXPROCS(0))
	rdb.SetMaxOpenConns(n)
	rdb.SetMaxIdleConns(n)
	s, err := open(ctx, sqliteDialect, wdb, rdb)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open store: %w", err), wdb.Close(), rdb.Close())
	}
	return s, nil
}

// sqliteDSN returns the data source name of the file at path with the
// settings every connection shares and extra.
func sqliteDSN(path string, extra url.Values) string {
	q := url.Values{
		"_busy_timeout": {busyTimeoutMillis},
		"_foreign_keys": {"1"},
	}
	for k, v := range extra {
		q[k] = v
	}
	return path + "?" + q.Encode()
}
