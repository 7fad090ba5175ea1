package broker_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"slices"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/broker"
	"github.com/lapse-access/lapse/connector/token"
	"github.com/lapse-access/lapse/expiry"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/seal"
)

// BenchmarkSubmitAutoApproved measures an auto-approved request on the
// token connector from submission to active, in process: policy, the
// request's transaction, the claim, signing the token and the activation's
// transaction. It reports the latency percentiles.
func BenchmarkSubmitAutoApproved(b *testing.B) {
	st := lapsetest.OpenStore(b)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	conn := token.New(key, "bench")
	box, _ := seal.New(make([]byte, 32))
	catalog := &lapse.Catalog{Resources: []lapse.Resource{{Name: "app", Connector: "tokens", Roles: []lapse.Role{
		{Name: "read", MaxDuration: 4 * time.Hour, Requesters: []string{"eng"}}}}}}
	target := func(string, string) (lapse.Connector, any, error) { return conn, nil, nil }
	sched := &expiry.Scheduler{Store: st, Target: target, Sealer: box}
	br := &broker.Broker{Store: st, Catalog: catalog, Decider: lapsetest.CompiledPolicies(b, catalog), Executor: sched, Target: target, Sealer: box}
	alice := lapse.Principal{Name: "alice", Groups: []string{"eng"}}
	in := broker.SubmitInput{Resource: "app", Role: "read", Duration: time.Hour, Reason: "INC-1"}
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		res, err := br.Submit(context.Background(), alice, in)
		lat = append(lat, time.Since(t0))
		if err != nil || res.Request.State != lapse.StateActive || res.Credentials == nil {
			b.Fatalf("submit: %v %s", err, res.Request.State)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
