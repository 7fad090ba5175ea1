package expiry_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/broker"
	"github.com/lapse-access/lapse/connector/token"
	"github.com/lapse-access/lapse/expiry"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
	"github.com/lapse-access/lapse/sqlstore"
)

// BenchmarkReplicasSubmit measures auto-approved requests (request, claim,
// provision, activation: two transactions with their audit records) per
// second, from 32 and from 128 clients spread over 1 and over 3 replicas on
// one local PostgreSQL, and, as the baseline of the same run, from as many
// clients of one server on the embedded SQLite store. Each run submits for
// 5 s after a warm-up of 1 s.
func BenchmarkReplicasSubmit(b *testing.B) {
	pg := pgtest.Start(b)
	for _, clients := range []int{32, 128} {
		b.Run(fmt.Sprintf("sqlite/clients=%d", clients), func(b *testing.B) {
			for b.Loop() {
				st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "lapse.db"))
				if err != nil {
					b.Fatal(err)
				}
				c := newCluster(b, "", 0, replicaLease)
				r := &replica{owner: "local", store: st}
				target := func(string, string) (lapse.Connector, any, error) { return c.conn, nil, nil }
				r.sched = &expiry.Scheduler{Store: st, Target: target, Sealer: c.box, Owner: r.owner, Logger: c.quiet}
				r.broker = &broker.Broker{Store: st, Catalog: c.catalog, Decider: c.decider, Executor: r.sched,
					Target: target, Sealer: c.box, Owner: r.owner, Logger: c.quiet}
				c.replicas = []*replica{r}
				c.start(b)
				b.ReportMetric(submitRate(b, c, clients), "req/s")
				c.stop()
				st.Close()
			}
		})
		for _, n := range []int{1, 3} {
			b.Run(fmt.Sprintf("replicas=%d/clients=%d", n, clients), func(b *testing.B) {
				for b.Loop() {
					c := newCluster(b, pg.AdminDSNFor(pg.CreateDatabase(b)), n, replicaLease)
					c.start(b)
					b.ReportMetric(submitRate(b, c, clients), "req/s")
					c.stop()
				}
			})
		}
	}
}

// submitRate submits auto-approved requests from clients spread over the
// cluster's replicas and returns how many per second became active.
func submitRate(b *testing.B, c *cluster, clients int) float64 {
	var done atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range clients {
		r := c.replicas[w%len(c.replicas)]
		wg.Go(func() {
			p := lapse.Principal{Name: fmt.Sprintf("user%d", w), Groups: []string{"eng"}}
			for ctx.Err() == nil {
				res, err := r.broker.Submit(context.Background(), p, broker.SubmitInput{Resource: "app", Role: "read", Duration: time.Hour, Reason: "bench"})
				if err != nil || res.Request.State != lapse.StateActive {
					b.Errorf("submit: %v", err)
					return
				}
				done.Add(1)
			}
		})
	}
	time.Sleep(time.Second)
	start, n0 := time.Now(), done.Load()
	time.Sleep(5 * time.Second)
	rate := float64(done.Load()-n0) / time.Since(start).Seconds()
	cancel()
	wg.Wait()
	return rate
}

// BenchmarkReplicasRevocationLag stores 100,000 active token grants whose
// expiries are spread over 60 s, runs three replicas on one PostgreSQL on
// the real clock, and reports the lag between each expiry and the commit
// that records the grant as ended (p50, p99, max), and grants missed. Run
// it once: -benchtime 1x.
func BenchmarkReplicasRevocationLag(b *testing.B) {
	const (
		grants = 100_000
		spread = 60 * time.Second
	)
	pg := pgtest.Start(b)
	for b.Loop() {
		c := newCluster(b, pg.AdminDSNFor(pg.CreateDatabase(b)), 3, 2*time.Minute)
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		conn := token.New(key, "bench")
		var mu sync.Mutex
		lags := make([]time.Duration, 0, grants)
		for _, r := range c.replicas {
			r.sched.Target = func(string, string) (lapse.Connector, any, error) { return conn, nil, nil }
			r.sched.OnEnded = func(req lapse.Request) {
				lag := time.Since(req.ExpiresAt)
				mu.Lock()
				lags = append(lags, lag)
				mu.Unlock()
			}
		}
		base := time.Now().Add(45 * time.Second)
		storeActive(b, c.replicas[0].store, grants, func(i int) time.Time { return base.Add(time.Duration(i) * spread / grants) })
		if time.Now().After(base) {
			b.Fatal("setup took too long: expiries began before every grant was stored")
		}
		c.start(b)
		deadline := base.Add(spread + 60*time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			n := len(lags)
			mu.Unlock()
			if n >= grants {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		missed, err := c.settled(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		slices.Sort(lags)
		pct := func(p float64) float64 {
			if len(lags) == 0 {
				return 0
			}
			return float64(lags[min(len(lags)-1, int(p*float64(len(lags))))].Microseconds()) / 1000
		}
		b.ReportMetric(pct(0.50), "lag-p50-ms")
		b.ReportMetric(pct(0.99), "lag-p99-ms")
		b.ReportMetric(pct(1), "lag-max-ms")
		b.ReportMetric(float64(missed), "missed")
		mu.Unlock()
	}
}
