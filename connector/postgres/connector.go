package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lapse-access/lapse"
)

// Defaults for the zero values of [Config].
const (
	DefaultMaxConns        = 4
	DefaultTimeout         = 10 * time.Second
	DefaultSCRAMIterations = 1
)

// maxSCRAMIterations is the most iterations a client will compute: pgx
// refuses more than ten million.
const maxSCRAMIterations = 1_000_000

// Log attribute keys.
const (
	logConnector = "connector"
	logRole      = "role"
	logGrant     = "grant"
	logSessions  = "sessions"
	logElapsed   = "elapsed"
	logSystem    = "system"
	logCreated   = "created"
	logOutcome   = "outcome"
	logUntil     = "valid_until"
)

// Config configures a [Connector].
type Config struct {
	// Name is the connector's name in the Lapse configuration; errors and
	// logs mention it.
	Name string
	// DSN is the admin connection string, as a postgres:// URL or in
	// keyword=value form. It is secret: the caller reads it from the
	// environment or a file, and the connector never shows it.
	DSN string
	// MaxConns is the most admin connections the connector opens to the
	// target at once. Zero means [DefaultMaxConns].
	MaxConns int32
	// Timeout bounds each call to the target. Zero means [DefaultTimeout].
	Timeout time.Duration
	// SCRAMIterations is the PBKDF2 iteration count in the stored
	// verifiers of issued passwords. Zero means [DefaultSCRAMIterations].
	//
	// Iterations slow down guessing a password from a stolen verifier,
	// which matters for passwords people choose. An issued password is 32
	// random bytes, which no number of guesses finds, so iterations add no
	// protection here. They do cost: PostgreSQL runs the full derivation
	// once in every CREATE or ALTER ROLE ... PASSWORD (it checks that the
	// password is not empty), and the client runs it at every login. With
	// the usual 4096 that is most of the time Provision takes. Raise it
	// only for a client that insists on a minimum.
	SCRAMIterations int
	// Logger receives the connector's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Connector provisions temporary login roles in one PostgreSQL server. It
// implements [lapse.Connector], [lapse.RoleDecoder],
// [lapse.ActivitySampler] and [lapse.Pinger]. It is safe for concurrent
// use.
type Connector struct {
	name       string
	timeout    time.Duration
	iterations int
	logger     *slog.Logger
	poolCfg    *pgxpool.Config
	target     target
	mask       masker

	// revokeCfg configures the revocation pool; nil when MaxConns is 1 and
	// revocations share the one pool.
	revokeCfg *pgxpool.Config

	mu     sync.Mutex
	pool   *pgxpool.Pool
	rpool  *pgxpool.Pool
	closed bool
}

var (
	_ lapse.Connector       = (*Connector)(nil)
	_ lapse.RoleDecoder     = (*Connector)(nil)
	_ lapse.ActivitySampler = (*Connector)(nil)
	_ lapse.Pinger          = (*Connector)(nil)
)

// errClosed is returned by calls after [Connector.Close].
var errClosed = errors.New("postgres connector is closed")

// New checks cfg and returns a connector. It does not connect: the first
// call that needs the target does.
func New(cfg Config) (*Connector, error) {
	if cfg.Name == "" {
		return nil, lapse.Invalidf("postgres connector: name is required")
	}
	if cfg.DSN == "" {
		return nil, lapse.Invalidf("postgres connector %s: the admin DSN is empty", cfg.Name)
	}
	if cfg.MaxConns < 0 {
		return nil, lapse.Invalidf("postgres connector %s: max connections must not be negative, got %d", cfg.Name, cfg.MaxConns)
	}
	if cfg.Timeout < 0 {
		return nil, lapse.Invalidf("postgres connector %s: timeout must not be negative, got %s", cfg.Name, cfg.Timeout)
	}
	if cfg.SCRAMIterations < 0 || cfg.SCRAMIterations > maxSCRAMIterations {
		return nil, lapse.Invalidf("postgres connector %s: SCRAM iterations must be between 1 and %d, got %d", cfg.Name, maxSCRAMIterations, cfg.SCRAMIterations)
	}
	poolCfg, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// The parser's message may quote the DSN, password included, and a
		// malformed DSN cannot be masked reliably: say only what is wrong.
		return nil, lapse.Invalidf("postgres connector %s: the admin DSN cannot be parsed; expected postgres://user:password@host:port/database or host=... user=... keyword=value pairs", cfg.Name)
	}
	c := &Connector{
		name:       cfg.Name,
		timeout:    cfg.Timeout,
		iterations: cfg.SCRAMIterations,
		logger:     cfg.Logger,
		poolCfg:    poolCfg,
		target:     targetOf(poolCfg.ConnConfig.Config),
		mask:       newMasker(cfg.DSN, poolCfg.ConnConfig.Config),
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.iterations == 0 {
		c.iterations = DefaultSCRAMIterations
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	c.logger = c.logger.With(logSystem, "connector/postgres", logConnector, cfg.Name)
	maxConns := cfg.MaxConns
	if maxConns == 0 {
		maxConns = DefaultMaxConns
	}
	poolCfg.MinConns, poolCfg.MinIdleConns = 0, 0
	if poolCfg.ConnConfig.RuntimeParams == nil {
		poolCfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	if _, ok := poolCfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		poolCfg.ConnConfig.RuntimeParams["application_name"] = "lapse"
	}
	// Revocations get connections of their own, so that a burst of
	// provisioning never makes an expiry wait, nor the other way round.
	poolCfg.MaxConns = maxConns
	if maxConns >= 2 {
		c.revokeCfg = poolCfg.Copy()
		c.revokeCfg.MaxConns = maxConns / 2
		poolCfg.MaxConns = maxConns - c.revokeCfg.MaxConns
	}
	return c, nil
}

// Name returns the connector's name.
func (c *Connector) Name() string { return c.name }

// Close closes the admin connections. Calls after Close fail.
func (c *Connector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, p := range []**pgxpool.Pool{&c.pool, &c.rpool} {
		if *p != nil {
			(*p).Close()
			*p = nil
		}
	}
	return nil
}

// Ping checks that the target accepts the admin login and answers.
func (c *Connector) Ping(ctx context.Context) error {
	err := c.doRevoke(ctx, func(ctx context.Context, pool *pgxpool.Pool) error {
		return pool.Ping(ctx)
	})
	if err != nil {
		return fmt.Errorf("ping %s: %w", c.name, err)
	}
	return nil
}

// getPool returns the pool for provisioning, or with revoke the pool for
// revocations, creating it on first use. Creating it does not connect.
func (c *Connector) getPool(revoke bool) (*pgxpool.Pool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	p, cfg := &c.pool, c.poolCfg
	if revoke && c.revokeCfg != nil {
		p, cfg = &c.rpool, c.revokeCfg
	}
	if *p == nil {
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			return nil, c.mask.error(err)
		}
		*p = pool
	}
	return *p, nil
}

// do runs fn against the target within the connector's timeout. Every
// operation of the connector is idempotent, so when the connection was lost
// (the server restarted, say) do drops the pool's connections and runs fn
// once more. Errors come back with secrets masked.
func (c *Connector) do(ctx context.Context, fn func(ctx context.Context, pool *pgxpool.Pool) error) error {
	return c.doOn(ctx, false, fn)
}

// doRevoke is do on the revocation pool.
func (c *Connector) doRevoke(ctx context.Context, fn func(ctx context.Context, pool *pgxpool.Pool) error) error {
	return c.doOn(ctx, true, fn)
}

func (c *Connector) doOn(ctx context.Context, revoke bool, fn func(ctx context.Context, pool *pgxpool.Pool) error) error {
	pool, err := c.getPool(revoke)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err = fn(ctx, pool)
	if err != nil && ctx.Err() == nil && connectionLost(err) {
		pool.Reset()
		err = fn(ctx, pool)
	}
	return c.mask.error(err)
}

// connectionLost reports whether err says the connection to the server
// failed or broke, rather than that the server refused a statement.
func connectionLost(err error) bool {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
			return true
		}
		return len(pgErr.Code) == 5 && pgErr.Code[:2] == "08" // connection_exception
	}
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		pgconn.SafeToRetry(err)
}

// target is where the handed-out URLs point: the admin DSN's first host.
type target struct {
	host     string // host name, address, or socket directory
	port     uint16
	database string
	sslmode  string
}

func targetOf(cfg pgconn.Config) target {
	t := target{host: cfg.Host, port: cfg.Port, database: cfg.Database, sslmode: sslMode(cfg)}
	if t.database == "" {
		// The server's default: the database named like the user.
		t.database = cfg.User
	}
	return t
}

// url returns a postgres:// URL that logs role in with password.
func (t target) url(role, password string) string {
	u := url.URL{
		Scheme: "postgres",
		User:   url.UserPassword(role, password),
		Path:   "/" + t.database,
	}
	q := url.Values{}
	if len(t.host) > 0 && t.host[0] == '/' {
		// A unix socket directory goes in the query.
		q.Set("host", t.host)
		q.Set("port", strconv.Itoa(int(t.port)))
	} else {
		u.Host = net.JoinHostPort(t.host, strconv.Itoa(int(t.port)))
	}
	q.Set("sslmode", t.sslmode)
	u.RawQuery = q.Encode()
	return u.String()
}

// sslMode recovers the libpq sslmode from the TLS settings that pgconn
// derived from it, so that the requester's client behaves like the admin
// connection.
func sslMode(cfg pgconn.Config) string {
	sameHostFallback := func(withTLS bool) bool {
		for _, f := range cfg.Fallbacks {
			if f.Host == cfg.Host && f.Port == cfg.Port && (f.TLSConfig != nil) == withTLS {
				return true
			}
		}
		return false
	}
	switch {
	case cfg.TLSConfig == nil && sameHostFallback(true):
		return "allow"
	case cfg.TLSConfig == nil:
		return "disable"
	case sameHostFallback(false):
		return "prefer"
	case !cfg.TLSConfig.InsecureSkipVerify:
		return "verify-full"
	case cfg.TLSConfig.VerifyPeerCertificate != nil:
		return "verify-ca"
	default:
		return "require"
	}
}
