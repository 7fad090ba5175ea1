package expiry_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/broker"
	"github.com/lapse-access/lapse/connector/postgres"
	"github.com/lapse-access/lapse/expiry"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
	"github.com/lapse-access/lapse/seal"
	"github.com/lapse-access/lapse/sqlstore"
)

// pgWave is a scheduler and broker on a real PostgreSQL target.
type pgWave struct {
	pg     *pgtest.Server
	conn   *postgres.Connector
	store  *sqlstore.Store
	sched  *expiry.Scheduler
	broker *broker.Broker
	mu     sync.Mutex
	lags   []time.Duration
}

func newPGWave(b *testing.B) *pgWave {
	b.Helper()
	w := &pgWave{pg: pgtest.Start(b)}
	admin := w.pg.Admin(b, w.pg.Database)
	if _, err := admin.Exec(context.Background(), `CREATE ROLE orders_read NOLOGIN`); err != nil {
		b.Fatal(err)
	}
	conn, err := postgres.New(postgres.Config{Name: "orders-pg", DSN: w.pg.AdminDSN(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	w.conn = conn
	settings, err := conn.DecodeRole(func(v any) error {
		v.(*postgres.RoleSettings).Grant = []string{"orders_read"}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "lapse.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	w.store = st
	box, _ := seal.New(make([]byte, 32))
	target := func(string, string) (lapse.Connector, any, error) { return conn, settings, nil }
	w.sched = &expiry.Scheduler{Store: st, Target: target, Sealer: box, Logger: slog.New(slog.DiscardHandler), OnEnded: func(r lapse.Request) {
		if r.EndReason != lapse.EndExpired {
			return
		}
		lag := time.Since(r.ExpiresAt)
		w.mu.Lock()
		w.lags = append(w.lags, lag)
		w.mu.Unlock()
	}}
	catalog := &lapse.Catalog{Resources: []lapse.Resource{{Name: "orders-db", Connector: "orders-pg", Roles: []lapse.Role{
		{Name: "read", MaxDuration: 24 * time.Hour, Requesters: []string{"eng"}, Settings: settings}}}}}
	w.broker = &broker.Broker{Store: st, Catalog: catalog, Decider: lapsetest.CompiledPolicies(b, catalog), Executor: w.sched, Target: target, Sealer: box}
	return w
}

// submitUntil provisions one grant per expiry, from 8 goroutines.
func (w *pgWave) provision(b *testing.B, expiries []time.Time) {
	b.Helper()
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for g := range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(expiries) {
					return
				}
				p := lapse.Principal{Name: fmt.Sprintf("user%d", g), Groups: []string{"eng"}}
				d := time.Until(expiries[i])
				res, err := w.broker.Submit(context.Background(), p, broker.SubmitInput{Resource: "orders-db", Role: "read", Duration: d, Reason: "wave"})
				if err != nil || res.Request.State != lapse.StateActive {
					b.Errorf("provision: %v %s", err, res.Request.State)
					return
				}
			}
		})
	}
	wg.Wait()
}

func (w *pgWave) run(b *testing.B) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if err := w.sched.Recover(ctx); err != nil {
		b.Fatal(err)
	}
	go func() { defer close(done); _ = w.sched.Run(ctx) }()
	return func() { cancel(); <-done }
}

func (w *pgWave) waitEnded(b *testing.B, n int, within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		got := len(w.lags)
		w.mu.Unlock()
		if got >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("only %d of %d grants ended within %s", len(w.lags), n, within)
}

func (w *pgWave) report(b *testing.B) {
	w.mu.Lock()
	defer w.mu.Unlock()
	slices.Sort(w.lags)
	pct := func(p float64) float64 {
		return float64(w.lags[min(len(w.lags)-1, int(p*float64(len(w.lags))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "lag-p50-ms")
	b.ReportMetric(pct(0.99), "lag-p99-ms")
	b.ReportMetric(pct(1), "lag-max-ms")
}

func (w *pgWave) lapseRoles(b *testing.B) int {
	var n int
	admin := w.pg.Admin(b, w.pg.Database)
	if err := admin.QueryRow(context.Background(), `SELECT count(*) FROM pg_roles WHERE rolname LIKE 'lapse\_%'`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkPostgresExpiryWave provisions 1,000 temporary roles in a real
// PostgreSQL whose expiries fall within the same 5 s, and measures the lag
// of their revocation while 32 clients keep requesting new grants. It
// reports the lag percentiles, the grants issued per second during the
// wave, and the most admin connections seen on the target. Run it once:
// -benchtime 1x.
func BenchmarkPostgresExpiryWave(b *testing.B) {
	const grants = 1000
	for b.Loop() {
		w := newPGWave(b)
		stop := w.run(b)
		start := time.Now().Add(8 * time.Second)
		expiries := make([]time.Time, grants)
		for i := range expiries {
			expiries[i] = start.Add(time.Duration(i) * 5 * time.Second / grants)
		}
		w.provision(b, expiries)
		if time.Now().After(start) {
			b.Fatal("setup took too long: the wave began before every grant was provisioned")
		}
		time.Sleep(time.Until(start))

		// New grants keep being issued during the wave.
		var issued atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for g := range 32 {
			wg.Go(func() {
				p := lapse.Principal{Name: fmt.Sprintf("issuer%d", g), Groups: []string{"eng"}}
				for ctx.Err() == nil {
					res, err := w.broker.Submit(context.Background(), p, broker.SubmitInput{Resource: "orders-db", Role: "read", Duration: time.Hour, Reason: "during the wave"})
					if err == nil && res.Request.State == lapse.StateActive {
						issued.Add(1)
					}
				}
			})
		}
		// Sample the admin connections on the target.
		maxAdmin := 0
		admin := w.pg.Admin(b, w.pg.Database)
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for ctx.Err() == nil {
				var n int
				if err := admin.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND application_name = 'lapse'`, pgtest.Superuser).Scan(&n); err == nil {
					maxAdmin = max(maxAdmin, n)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		waveStart := time.Now()
		w.waitEnded(b, grants, 30*time.Second)
		waveTime := time.Since(waveStart)
		cancel()
		wg.Wait()
		<-sampled
		stop()
		w.report(b)
		b.ReportMetric(float64(issued.Load())/waveTime.Seconds(), "issued/s")
		b.ReportMetric(float64(maxAdmin), "admin-conns-max")
		b.ReportMetric(float64(w.lapseRoles(b)-int(issued.Load())), "roles-left")
	}
}

// BenchmarkPostgresOutageRecovery provisions 1,000 roles expiring within
// 5 s, stops PostgreSQL before the wave for 30 s, and reports how long after
// it is back every role is gone. Run it once: -benchtime 1x.
func BenchmarkPostgresOutageRecovery(b *testing.B) {
	const grants = 1000
	for b.Loop() {
		w := newPGWave(b)
		stop := w.run(b)
		start := time.Now().Add(8 * time.Second)
		expiries := make([]time.Time, grants)
		for i := range expiries {
			expiries[i] = start.Add(time.Duration(i) * 5 * time.Second / grants)
		}
		w.provision(b, expiries)
		w.pg.Stop(b)
		time.Sleep(time.Until(start.Add(25 * time.Second))) // down 30 s or more, across the wave
		w.pg.Start(b)
		back := time.Now()
		w.waitEnded(b, grants, 60*time.Second)
		recovered := time.Since(back)
		stop()
		b.ReportMetric(float64(recovered.Milliseconds()), "all-gone-after-ms")
		b.ReportMetric(float64(w.lapseRoles(b)), "roles-left")
	}
}
