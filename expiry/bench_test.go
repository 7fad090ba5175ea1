package expiry_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector/token"
	"github.com/lapse-access/lapse/expiry"
	"github.com/lapse-access/lapse/sqlstore"
)

// BenchmarkRevocationLag activates 100,000 grants on the token connector
// whose expiries are spread over 10 s, runs the scheduler on the real clock,
// and reports the lag between each expiry and the moment the grant was
// recorded as ended (p50, p99, max), grants missed, and the process's peak
// RSS. Run it once: -benchtime 1x.
func BenchmarkRevocationLag(b *testing.B) {
	const (
		grants = 100_000
		spread = 10 * time.Second
	)
	for b.Loop() {
		st, err := sqlstore.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "lapse.db"))
		if err != nil {
			b.Fatal(err)
		}
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		conn := token.New(key, "bench")
		// Expiries start after the setup has had time to store every grant.
		base := time.Now().Add(12 * time.Second)
		const chunk = 5000
		for i := 0; i < grants; i += chunk {
			err := st.Tx(context.Background(), func(ctx context.Context, tx lapse.Tx) error {
				for j := i; j < i+chunk; j++ {
					exp := base.Add(time.Duration(j) * spread / grants)
					r, err := lapse.NewRequest(lapse.Request{ID: fmt.Sprintf("g%06d", j), User: fmt.Sprintf("user%d", j%1000),
						Resource: "app", Role: "read", Reason: "bench", Duration: time.Hour}, 0, time.Hour, exp.Add(-time.Hour))
					if err != nil {
						return err
					}
					if r, err = r.Activate(r.ID, exp.Add(-time.Hour)); err != nil {
						return err
					}
					if err := tx.CreateRequest(ctx, &r); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		if time.Now().After(base) {
			b.Fatalf("setup took too long: expiries began before every grant was stored")
		}
		var mu sync.Mutex
		lags := make([]time.Duration, 0, grants)
		all := make(chan struct{})
		s := &expiry.Scheduler{Store: st, Clock: lapse.SystemClock{},
			Target: func(string, string) (lapse.Connector, any, error) { return conn, nil, nil },
			OnEnded: func(r lapse.Request) {
				lag := time.Since(r.ExpiresAt)
				mu.Lock()
				lags = append(lags, lag)
				if len(lags) == grants {
					close(all)
				}
				mu.Unlock()
			}}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(ctx) }()
		select {
		case <-all:
		case <-time.After(base.Add(spread + 60*time.Second).Sub(time.Now())):
		}
		cancel()
		<-done
		open, err := st.ListRequests(context.Background(), lapse.RequestFilter{
			States: []lapse.State{lapse.StateActive, lapse.StateRevoking}, Limit: grants})
		if err != nil {
			b.Fatal(err)
		}
		st.Close()
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
		b.ReportMetric(float64(len(open)), "missed")
		mu.Unlock()
		b.ReportMetric(peakRSSMB(), "peak-rss-MB")
	}
}

// peakRSSMB reads the process's peak resident set size (VmHWM).
func peakRSSMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}
