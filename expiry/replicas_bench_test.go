package expiry_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/broker"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
)

// BenchmarkReplicasSubmit measures auto-approved requests (request, claim,
// provision, activation: two transactions with their audit records) per
// second, from 32 clients spread over 1 and over 3 replicas on one local
// PostgreSQL. Each run submits for 5 s after a warm-up.
func BenchmarkReplicasSubmit(b *testing.B) {
	pg := pgtest.Start(b)
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {

			for b.Loop() {
				c := newCluster(b, pg.AdminDSNFor(pg.CreateDatabase(b)), n)
				c.start(b)
				var done atomic.Int64
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				for w := range 32 {
					r := c.replicas[w%n]
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
				b.ReportMetric(rate, "req/s")
			}
		})
	}
}
