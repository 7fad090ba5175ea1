package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/lapse-access/lapse"
)

// DueChannel is the PostgreSQL notification channel on which a request
// that becomes due at a new time is announced, with that time in Unix
// nanoseconds as the payload (a trigger sends it; see the migrations).
const DueChannel = "lapse_due"

// PostgresOptions tune [OpenPostgres]. The zero value is ready to use.
type PostgresOptions struct {
	// MaxConns bounds the connections of each of the store's two pools,
	// one for write transactions and one for reads outside them; default
	// 16. Two pools, so that a transaction that also reads through the
	// store (the anomaly rules do) never waits for a connection that
	// transactions like it hold.
	MaxConns int
}

var postgresDialect = &dialect{
	name:         "postgres",
	goose:        goose.DialectPostgres,
	placeholders: dollarPlaceholders,
	lockDue:      " FOR UPDATE SKIP LOCKED",
	// The audit tree's row holds the head of the log; locking it
	// serializes appends across servers, and reading it in the same
	// statement costs no extra trip.
	lockTree:       " FOR UPDATE",
	deferAudit:     true,
	conflict:       pgConflict,
	deleteInUpdate: true,
}

// OpenPostgres connects to the PostgreSQL database at dsn (a postgres://
// URL or key=value string) and migrates it to the current schema. Several
// servers may open the same database at once: migrations run under an
// advisory lock, write transactions are serialized by row locks and the
// version check of UpdateRequest, and appends to the audit log lock its
// head. Nothing is cached between transactions.
func OpenPostgres(ctx context.Context, dsn string, opts PostgresOptions) (*Store, error) {
	cfg, err := stdlibConfig(dsn)
	if err != nil {
		return nil, err
	}
	n := opts.MaxConns
	if n <= 0 {
		n = 16
	}
	pool := func() *sql.DB {
		db := stdlib.OpenDB(*cfg)
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
		db.SetConnMaxIdleTime(5 * time.Minute)
		return db
	}
	db, rdb := pool(), pool()
	if err := db.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("open store: %w", err), db.Close(), rdb.Close())
	}
	s, err := open(ctx, postgresDialect, db, rdb)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open store: %w", err), db.Close(), rdb.Close())
	}
	s.pgConfig = cfg
	s.sealer = newSealer(s)
	s.grouper = &grouper{s: s}
	// Records a server committed and did not live to seal are sealed now.
	if err := s.SealAudit(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("open store: %w", err), s.Close())
	}
	head, err := s.LastAuditSeq(ctx)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open store: %w", err), s.Close())
	}
	s.sealer.head.Store(head)
	return s, nil
}

// stdlibConfig parses dsn and names the store's connections.
func stdlibConfig(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password and all.
		return nil, lapse.Invalidf("open store: the PostgreSQL connection string does not parse")
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "lapse-store"
	}
	// The seals, the due-time watermark and the version checks rely on
	// each statement seeing what committed before it, whatever the
	// database's default.
	cfg.RuntimeParams["default_transaction_isolation"] = "read committed"
	return cfg, nil
}

// postgresLocker serializes migrations of servers starting at once.
func postgresLocker() (goose.ProviderOption, error) {
	l, err := lock.NewPostgresSessionLocker(
		// Wait up to 5 minutes for another server's migration.
		lock.WithLockTimeout(1, 300),
	)
	if err != nil {
		return nil, err
	}
	return goose.WithSessionLocker(l), nil
}

// dollarPlaceholders numbers the ? placeholders of query as $1, $2, ...,
// leaving string literals and quoted identifiers alone.
func dollarPlaceholders(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// pgConflict reports errors by which PostgreSQL refuses a transaction
// because of a concurrent one, which the caller may retry: serialization
// failures, deadlocks, and a duplicate key.
func pgConflict(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", "40P01":
		return true
	}
	return false
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.wdb.PingContext(ctx); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}
