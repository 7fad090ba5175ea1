package auditlog_test

import (
	"testing"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/auditlog"
)

// BenchmarkTreeAppend measures the Merkle part of an append: the leaf hash
// and the compact range update, without the store. BenchmarkChainHash is
// the record's chain hash, which every append computed before the tree.
func BenchmarkTreeAppend(b *testing.B) {
	ev := lapse.NewAuditEvent(lapse.EvActivity, "lapse", lapse.StateActive,
		lapse.Request{ID: "req-1", User: "alice", Resource: "orders-db", Role: "read", State: lapse.StateActive},
		map[string]string{"query": "SELECT 1"}, t0)
	hash := ev.ComputeHash("")
	tree, err := auditlog.NewTree(lapse.AuditTree{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := tree.Append(hash); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkChainHash(b *testing.B) {
	ev := lapse.NewAuditEvent(lapse.EvActivity, "lapse", lapse.StateActive,
		lapse.Request{ID: "req-1", User: "alice", Resource: "orders-db", Role: "read", State: lapse.StateActive},
		map[string]string{"query": "SELECT 1"}, t0)
	for b.Loop() {
		_ = ev.ComputeHash("e40af811f882a4747f9f8995074259e425d92beefe405bddb58c90599b8abc3c")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
