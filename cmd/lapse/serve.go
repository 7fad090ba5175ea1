package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/auditlog"
	"github.com/lapse-access/lapse/broker"
	"github.com/lapse-access/lapse/config"
	"github.com/lapse-access/lapse/connector/token"
	"github.com/lapse-access/lapse/expiry"
	"github.com/lapse-access/lapse/httpapi"
	"github.com/lapse-access/lapse/identity"
	"github.com/lapse-access/lapse/lease"
	"github.com/lapse-access/lapse/metrics"
	"github.com/lapse-access/lapse/monitor"
	"github.com/lapse-access/lapse/reconcile"
	"github.com/lapse-access/lapse/seal"
	"github.com/lapse-access/lapse/signals"
	"github.com/lapse-access/lapse/sink"
	"github.com/lapse-access/lapse/sqlstore"
	"github.com/lapse-access/lapse/webui"
)

type serveFlags struct {
	config, data, listen string
	demo                 bool
	logFormat, logLevel  string
}

func newServe(g *globals) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve [--config FILE] [--data DIR] [--listen ADDR] [--demo]",
		Short: "Run the Lapse server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return serve(cmd.Context(), f, g.stdout, g.stderr)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "config file (lapse.yaml)")
	fl.StringVar(&f.data, "data", "", "data directory (overrides server.data_dir)")
	fl.StringVar(&f.listen, "listen", "", "address to listen on (overrides server.listen)")
	fl.BoolVar(&f.demo, "demo", false, "run a demo with no config: temporary data, demo users and resources")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, got %q", format)
}

func loadConfig(path string) (*config.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return config.Parse(path, b, connectorTypes())
}

func serve(ctx context.Context, f serveFlags, stdout, stderr io.Writer) error {
	logger, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	var cfg *config.Config
	var demo *demoSetup
	switch {
	case f.demo && f.config != "":
		return errors.New("--demo and --config exclude each other")
	case f.demo:
		if demo, err = newDemo(); err != nil {
			return err
		}
		cfg = demo.config
		if f.data == "" {
			dir, err := os.MkdirTemp("", "lapse-demo-")
			if err != nil {
				return fmt.Errorf("create demo data dir: %w", err)
			}
			defer os.RemoveAll(dir)
			cfg.Server.DataDir = dir
		}
	case f.config == "":
		return errors.New("no config: pass --config lapse.yaml, or --demo to try Lapse")
	default:
		if cfg, err = loadConfig(f.config); err != nil {
			return err
		}
	}
	if f.data != "" {
		cfg.Server.DataDir = f.data
	}
	if f.listen != "" {
		cfg.Server.Listen = f.listen
	}
	opts, err := storageFromEnv(cfg, os.Getenv)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	url := "http://" + ln.Addr().String()
	app, err := openApp(ctx, cfg, opts, logger, ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	defer app.Close()
	logger.Info("policies", "hash", app.decider.p.Load().Hash(), "count", app.decider.p.Load().Len(), "folder", cfg.Policies)
	logger.Info("serving", "addr", ln.Addr().String(), "data_dir", cfg.Server.DataDir, "resources", len(cfg.Resources), "users", len(cfg.Users))
	if demo != nil {
		demo.printIntro(stdout, url)
	}
	return app.Serve(ctx, ln)
}

// app is a wired Lapse server.
type app struct {
	store     *sqlstore.Store
	listener  *sqlstore.Listener // nil for the embedded store
	scheduler *expiry.Scheduler
	broker    *broker.Broker
	http      *http.Server
	api       *httpapi.Server
	identity  *identity.Service
	logger    *slog.Logger
	unlock    func()
	conns     map[string]lapse.Connector
	network   *signals.Network
	decider   *decider
	policies  *policyWatcher
	sweeper   *reconcile.Sweeper
	sampler   *monitor.Sampler
	audit     *auditlog.Log
	watcher   *monitor.Watcher
	sinks     []*sink.Worker
	// singleton makes a runner for work that one replica at a time runs.
	singleton func(name string) *lease.Runner
}

func openApp(ctx context.Context, cfg *config.Config, opts storageOptions, logger *slog.Logger, addr net.Addr) (_ *app, err error) {
	dir := cfg.Server.DataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	st, err := openStorage(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	store, keys := st.store, st.keys
	defer func() {
		if err != nil {
			store.Close()
		}
	}()
	auditKey, err := openAuditKey(ctx, keys, cfg.Server.Instance)
	if err != nil {
		return nil, err
	}
	tokenKey, err := token.LoadOrCreateKeyIn(ctx, keys, "token.key")
	if err != nil {
		return nil, err
	}
	sealKey, err := seal.LoadOrCreateKeyIn(ctx, keys, "seal.key")
	if err != nil {
		return nil, err
	}
	box, err := seal.New(sealKey)
	if err != nil {
		return nil, err
	}
	tokens := token.New(tokenKey, cfg.Server.Issuer)
	conns := map[string]lapse.Connector{}
	defer func() {
		if err != nil {
			closeConnectors(conns)
		}
	}()
	for _, c := range cfg.Connectors {
		conn, err := openConnector(ctx, c, tokens, dir, keys, store, logger)
		if err != nil {
			return nil, err
		}
		conns[c.Name] = conn
	}
	catalog := &lapse.Catalog{Resources: cfg.Resources}
	engine, err := buildEngine(cfg)
	if err != nil {
		return nil, err
	}
	dec := &decider{}
	dec.p.Store(engine)
	target := func(resource, role string) (lapse.Connector, any, error) {
		res, ro, err := catalog.Lookup(resource, role)
		if err != nil {
			return nil, nil, lapse.Unrecoverable(err)
		}
		c, ok := conns[res.Connector]
		if !ok {
			return nil, nil, lapse.Unrecoverable(fmt.Errorf("resource %s: no connector %q", resource, res.Connector))
		}
		return c, ro.Settings, nil
	}
	clock := lapse.SystemClock{}
	sched := &expiry.Scheduler{
		Store: store, Target: target, Clock: clock, Sealer: box, Owner: st.owner,
		Logger: logger.With("system", "expiry"),
		// A shared database announces every new due time to all replicas,
		// this one included.
		Announced: st.listener != nil,
	}
	// Nothing claims work before this: the server is not serving yet.
	if err := sched.Recover(ctx); err != nil {
		return nil, err
	}
	b := &broker.Broker{
		Store: store, Catalog: catalog, Decider: dec, Executor: sched, Target: target,
		Sealer: box, Clock: clock, Owner: st.owner, PendingTTL: cfg.Server.PendingTTL, PostureMaxAge: cfg.Server.PostureMaxAge,
		Logger: logger.With("system", "broker"),
	}
	ids, err := newIdentity(cfg, store, clock, logger, addr)
	if err != nil {
		return nil, err
	}
	ids.GroupsChanged = func(ctx context.Context, user string) {
		n, err := b.Reevaluate(ctx, func(r lapse.Request) bool { return r.User == user })
		if err != nil {
			logger.Error("re-evaluate after a group change", "user", user, "err", err)
		} else if n > 0 {
			logger.Info("grants revoked after a group change", "user", user, "revoked", n)
		}
	}
	b.Directory = ids.Directory
	users := map[[32]byte]bool{}
	for _, u := range cfg.Users {
		users[u.TokenSHA256] = true
	}
	integrations := map[[32]byte]lapse.Principal{}
	for _, u := range cfg.Integrations {
		if _, clash := users[u.TokenSHA256]; clash {
			return nil, fmt.Errorf("integration %q has the token of a user", u.Name)
		}
		integrations[u.TokenSHA256] = lapse.Principal{Name: u.Name}
	}
	var authorities []httpapi.SSHAuthority
	for _, c := range cfg.Connectors {
		if a, ok := conns[c.Name].(httpapi.SSHAuthority); ok {
			authorities = append(authorities, a)
		}
	}
	network := &signals.Network{Trusted: cfg.Network.Trusted, TrustedProxies: cfg.Network.TrustedProxies}
	if cfg.Network.GeoIPDB != "" {
		if network.GeoIP, err = signals.OpenGeoIP(cfg.Network.GeoIPDB); err != nil {
			return nil, err
		}
	}
	b.Network = network.Lookup
	hist := &monitor.History{Store: store, Country: func(a netip.Addr) string { return network.Lookup(a).Country },
		Logger: logger.With("system", "monitor")}
	b.Risk = func(ctx context.Context, user string, s lapse.Signals, now time.Time) lapse.RiskSignals {
		h := hist.Of(ctx, user, now)
		open, err := hist.OpenAlertRules(ctx, user)
		if err != nil {
			logger.Warn("count open alerts", "user", user, "err", err)
		}
		return signals.Risk(signals.RiskInput{Device: s.Device, Network: s.Network, Hour: now.UTC().Hour(),
			KnownCountries: h.Countries, UsualHours: h.Hours, RecentDenials: h.Refused, OpenAlerts: open,
			MaxPostureAge: cfg.Server.PostureMaxAge, Now: now})
	}
	watcher := &monitor.Watcher{Store: store, Rules: cfg.Monitor.Rules, History: hist, Clock: clock,
		Logger: logger.With("system", "monitor"),
		Revoke: func(ctx context.Context, id, reason string) error {
			_, err := b.Revoke(ctx, lapse.Principal{Name: monitor.MonitorActor, Admin: true}, id, reason)
			return err
		}}
	// Every change made through the broker passes the anomaly rules in its
	// own transaction.
	b.Store = watcher.Wrap(store)
	mets := metrics.New(func(resource string) string {
		for _, r := range catalog.Resources {
			if r.Name == resource {
				return r.Connector
			}
		}
		return "unknown"
	}, store.CountRequests, logger.With("system", "metrics"))
	audit := &auditlog.Log{Store: store, Keys: auditKey, Clock: clock, Interval: cfg.Server.CheckpointInterval,
		Logger: logger.With("system", "audit")}
	sinks, err := openSinks(cfg.Audit.Sinks, store, mets, logger)
	if err != nil {
		return nil, err
	}
	store.OnCommit = func(evs []lapse.AuditEvent) {
		mets.Observe(evs)
		watcher.Observe(evs)
		for _, w := range sinks {
			w.Notify(evs)
		}
	}
	clientIP := func(r *http.Request) string {
		if a := network.ClientIP(r.RemoteAddr, r.Header.Values("X-Forwarded-For")); a.IsValid() {
			return a.String()
		}
		return ""
	}
	ssoURL := ""
	if ids.SSO() {
		ssoURL = identity.LoginURL("", 0)
	}
	ui, err := webui.New(webui.Config{
		Broker: b, Auth: ids, Loopback: loopback(cfg.Server.Listen),
		// A pasted API token becomes a web session: the static token never
		// sits in the browser, and signing out revokes the session.
		Exchange: func(ctx context.Context, token string) (string, time.Time, error) {
			res, err := ids.LocalSession(ctx, token)
			return res.Token, res.ExpiresAt, err
		},
		SSOLoginURL: ssoURL,
		Logout:      ids.LogoutToken,
		StepUp: func(r *http.Request, err error) string {
			var su *lapse.StepUpError
			if !errors.As(err, &su) || !ids.SSO() {
				return ""
			}
			back := "/"
			if r.Method == http.MethodGet {
				back = identity.LocalPath(r.URL.RequestURI())
			}
			return identity.LoginURL(back, su.MaxAge)
		},
		// Derived from the seal key, so that replicas sharing it accept
		// each other's forms, and forms survive a restart.
		CSRFKey:  deriveKey(sealKey, "lapse web ui csrf"),
		ClientIP: clientIP, ParseDuration: config.ParseDuration, Clock: clock,
		Logger: logger.With("system", "webui"),
	})
	if err != nil {
		return nil, err
	}
	api := &httpapi.Server{
		Metrics:      mets.Handler(),
		Monitor:      watcher,
		Audit:        audit,
		ClientIP:     clientIP,
		UI:           ui,
		SSH:          authorities,
		Integrations: httpapi.NewStaticTokens(integrations),
		Broker:       b, Auth: ids, Identity: ids, Tokens: tokenVerifier{tokens},
		Logger: logger.With("system", "http"), ParseDuration: config.ParseDuration,
		Ready: func(ctx context.Context) error {
			if err := store.Ping(ctx); err != nil {
				return err
			}
			if st.listener != nil {
				return st.listener.Ready()
			}
			return nil
		},
	}
	srv := &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// Revocations run inline (connector calls of up to 30 s each).
		WriteTimeout: 3 * time.Minute,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	sweeper := &reconcile.Sweeper{Store: store, Connectors: conns, Clock: clock, Logger: logger.With("system", "reconcile"),
		Interval: cfg.Server.ReconcileInterval}
	sampler := &monitor.Sampler{Store: watcher.Wrap(store), Target: target, Clock: clock, Logger: logger.With("system", "monitor"),
		Interval: cfg.Server.ActivityInterval}
	// Work that must run on one replica at a time runs under a lease in
	// the shared database; the embedded store's one server always holds it.
	var leases lapse.LeaseStore
	if st.listener != nil {
		leases = store
	}
	singleton := func(name string) *lease.Runner {
		return &lease.Runner{Store: leases, Name: name, Owner: st.owner, TTL: cfg.Server.LeaseDuration,
			Logger: logger.With("system", "lease"), OnChange: mets.SetLease}
	}
	return &app{singleton: singleton, store: store, listener: st.listener, scheduler: sched, broker: b, http: srv, api: api, identity: ids, logger: logger, unlock: unlock, conns: conns, audit: audit,
		sweeper: sweeper, sampler: sampler, decider: dec, network: network, watcher: watcher, sinks: sinks,
		policies: &policyWatcher{cfg: cfg, decider: dec, store: store, logger: logger.With("system", "policy"), Interval: 2 * time.Second,
			reevaluate:      func(ctx context.Context) (int, error) { return b.Reevaluate(ctx, nil) },
			ReevaluateEvery: cfg.Server.ReevaluateInterval}}, nil
}

// closeConnectors closes the connectors that hold resources.
func closeConnectors(conns map[string]lapse.Connector) error {
	var err error
	for _, c := range conns {
		if cl, ok := c.(io.Closer); ok {
			err = errors.Join(err, cl.Close())
		}
	}
	return err
}

// Serve runs the scheduler and the HTTP server on ln until ctx ends, then
// shuts both down.
func (a *app) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := a.scheduler.Run(ctx); err != nil {
			a.logger.Error("scheduler stopped", "err", err)
			cancel()
		}
	})
	if a.listener != nil {
		wg.Go(func() {
			_ = a.listener.Run(ctx, a.scheduler.NotifyAt, func(err error) {
				a.logger.Warn("database notifications interrupted; reconnecting", "err", err)
			})
		})
	}
	// One replica at a time runs each of these; another takes over when
	// it stops or loses the database.
	wg.Go(func() { _ = a.singleton("reconcile").Run(ctx, a.sweeper.Run) })
	wg.Go(func() { a.policies.run(ctx) })
	wg.Go(func() { _ = a.singleton("activity-sampler").Run(ctx, a.sampler.Run) })
	// Signs checkpoints while serving, and a last one when it stops.
	// Replicas signing at once would be harmless (each checkpoint is
	// signed under the audit tree's lock, and one that covers nothing new
	// is not stored), but one is enough.
	wg.Go(func() { _ = a.singleton("audit-checkpoints").Run(ctx, a.audit.Run) })
	wg.Go(func() {
		if err := a.watcher.Run(ctx); err != nil {
			a.logger.Error("monitor stopped", "err", err)
		}
	})
	for _, c := range a.conns {
		// Every replica keeps its own sshd's KRL file up to date with the
		// shared revocation list.
		if r, ok := c.(interface{ Run(context.Context) error }); ok {
			wg.Go(func() { _ = r.Run(ctx) })
		}
	}
	for _, w := range a.sinks {
		// The new holder resumes from the sink's cursor in the store.
		wg.Go(func() { _ = a.singleton("sink/"+w.Sink.Name()).Run(ctx, w.Run) })
	}
	errc := make(chan error, 1)
	go func() { errc <- a.http.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdownCtx, done := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer done()
	if serr := a.http.Shutdown(shutdownCtx); serr != nil {
		a.logger.Warn("shutdown", "err", serr)
	}
	cancel()
	wg.Wait()
	a.logger.Info("stopped")
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// Close releases the store and the data dir.
func (a *app) Close() error {
	err := errors.Join(closeConnectors(a.conns), closeSinks(a.sinks), a.store.Close())
	if a.network.GeoIP != nil {
		err = errors.Join(err, a.network.GeoIP.Close())
	}
	a.unlock()
	return err
}

// lockDir takes an exclusive lock on the data dir, so that two servers never
// share one embedded database.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another lapse server", dir)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// loopback reports whether the listen address is on loopback only.
func loopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// deriveKey derives a key for purpose from a secret key.
func deriveKey(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// tokenVerifier adapts the token connector to the HTTP API.
type tokenVerifier struct{ c *token.Connector }

func (t tokenVerifier) VerifyToken(s string) (id, user, resource, role string, err error) {
	cl, err := t.c.Verify(s)
	if err != nil {
		return "", "", "", "", err
	}
	if len(cl.Audience) != 1 {
		return "", "", "", "", errors.New("token has no single audience")
	}
	return cl.ID, cl.Subject, cl.Audience[0], cl.Role, nil
}

func (t tokenVerifier) JWKS() []byte { return t.c.JWKS() }

// newToken returns a random bearer token and its SHA-256.
func newToken(prefix string) (string, [32]byte) {
	var b [24]byte
	_, _ = rand.Read(b[:])
	tok := prefix + "_" + hex.EncodeToString(b[:])
	return tok, sha256.Sum256([]byte(tok))
}
