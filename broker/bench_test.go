package broker_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
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

// BenchmarkReevaluate10000 asks policy again about 10,000 active grants,
// as after a policy change, with none revoked: target ≤ 2 s.
func BenchmarkReevaluate10000(b *testing.B) {
	st := lapsetest.OpenStore(b)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	conn := token.New(key, "bench")
	catalog := &lapse.Catalog{Resources: []lapse.Resource{{Name: "app", Connector: "tokens", Roles: []lapse.Role{
		{Name: "read", MaxDuration: 24 * time.Hour, Requesters: []string{"eng"}}}}}}
	target := func(string, string) (lapse.Connector, any, error) { return conn, nil, nil }
	box, _ := seal.New(make([]byte, 32))
	sched := &expiry.Scheduler{Store: st, Target: target, Sealer: box}
	br := &broker.Broker{Store: st, Catalog: catalog, Decider: lapsetest.CompiledPolicies(b, catalog), Executor: sched, Target: target, Sealer: box,
		Directory: func(_ context.Context, name string) (lapse.Principal, bool) {
			return lapse.Principal{Name: name, Groups: []string{"eng"}}, true
		}}
	now := time.Now()
	err := st.Tx(context.Background(), func(ctx context.Context, tx lapse.Tx) error {
		for i := range 10_000 {
			r, err := lapse.NewRequest(lapse.Request{ID: fmt.Sprintf("g%05d", i), User: fmt.Sprintf("user%d", i%500),
				Resource: "app", Role: "read", Reason: "bench", Duration: 12 * time.Hour, ClientIP: "10.0.0.1"}, 0, time.Hour, now)
			if err != nil {
				return err
			}
			if r, err = r.Activate("ref", now); err != nil {
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
	for b.Loop() {
		n, err := br.Reevaluate(context.Background(), nil)
		if err != nil || n != 0 {
			b.Fatalf("reevaluate: %d revoked, %v", n, err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/pass")
}
