package postgres_test

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lapse-access/lapse/lapsetest/pgtest"
)

// clients is how many goroutines BenchmarkProvisionParallel runs.
const clients = 32

// latencies collects the duration of each operation of a benchmark.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// report adds the median and the 99th percentile to the benchmark's output.
func (l *latencies) report(b *testing.B) {
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	at := func(q float64) float64 {
		return float64(l.d[int(q*float64(len(l.d)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}

// dropBenchRoles drops the roles the benchmark left behind.
func (f *fixture) dropBenchRoles(b *testing.B) {
	f.exec(b, `DO $$ DECLARE r text; BEGIN
		FOR r IN SELECT rolname FROM pg_roles WHERE rolname LIKE 'lapse\_bench\_%' LOOP
			EXECUTE format('DROP ROLE %I', r);
		END LOOP; END $$`)
}

func BenchmarkProvision(b *testing.B) {
	f := newFixture(b, pgtest.Shared(b))
	ctx := context.Background()
	var lat latencies
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := f.conn.Provision(ctx, newGrant("bench", time.Hour)); err != nil {
			b.Fatal(err)
		}
		lat.add(time.Since(start))
	}
	b.StopTimer()
	lat.report(b)
	f.dropBenchRoles(b)
}

func BenchmarkProvisionParallel(b *testing.B) {
	f := newFixture(b, pgtest.Shared(b))
	ctx := context.Background()
	var lat latencies
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			t0 := time.Now()
			if _, err := f.conn.Provision(ctx, newGrant("bench", time.Hour)); err != nil {
				b.Error(err)
				return
			}
			lat.add(time.Since(t0))
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "grants/s")
	lat.report(b)
	f.dropBenchRoles(b)
}

// BenchmarkRevoke revokes roles that each have one open session, which
// Revoke must terminate.
func BenchmarkRevoke(b *testing.B) {
	f := newFixture(b, pgtest.Shared(b))
	ctx := context.Background()
	var lat latencies
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		g, p := f.provision(b, newGrant("bench", time.Hour))
		conn, err := login(ctx, p)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		start := time.Now()
		if err := f.conn.Revoke(ctx, g); err != nil {
			b.Fatal(err)
		}
		lat.add(time.Since(start))

		b.StopTimer()
		if err := conn.Ping(ctx); err == nil {
			b.Fatal("the session survived Revoke")
		}
		_ = conn.Close(ctx)
		b.StartTimer()
	}
	b.StopTimer()
	lat.report(b)
}
