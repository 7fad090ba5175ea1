package auditlog_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

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

// millionExport writes an export file of a million records (a thousand
// users, a hundred resources, the data of an activity record) with a
// signed checkpoint every 10,000, and returns it and its verifier key.
// It builds the file as the server's export would, without a store.
func millionExport(b *testing.B) ([]byte, string) {
	b.Helper()
	const records = 1_000_000
	k, err := auditlog.LoadOrCreateFileKey(filepath.Join(b.TempDir(), "audit.key"), "lapse/bench")
	if err != nil {
		b.Fatal(err)
	}
	signer, _ := k.Signer(b.Context())
	vkey, _ := k.VerifierKey(b.Context())
	tree, err := auditlog.NewTree(lapse.AuditTree{})
	if err != nil {
		b.Fatal(err)
	}
	var recs, cps bytes.Buffer
	var line []byte
	prev := ""
	for seq := 1; seq <= records; seq++ {
		r := lapse.Request{ID: fmt.Sprintf("req-%d", seq/5), User: fmt.Sprintf("user%d", seq%1000),
			Resource: fmt.Sprintf("res%d", seq%100), Role: "read", State: lapse.StateActive}
		ev := lapse.NewAuditEvent(lapse.EvActivity, "lapse", lapse.StateActive, r,
			map[string]any{"client_addr": "10.0.0.7", "query": "SELECT * FROM orders WHERE id = $1"}, t0.Add(time.Duration(seq)*time.Millisecond))
		ev.Seq, ev.PrevHash = int64(seq), prev
		ev.Hash = ev.ComputeHash(prev)
		prev = ev.Hash
		if err := tree.Append(ev.Hash); err != nil {
			b.Fatal(err)
		}
		line = append(line[:0], `{"record":`...)
		if line, err = auditlog.AppendRecord(line, ev); err != nil {
			b.Fatal(err)
		}
		recs.Write(append(line, "}\n"...))
		if seq%10_000 == 0 {
			msg, err := auditlog.SignCheckpoint(auditlog.CheckpointBody{Origin: signer.Name(), Size: tree.Size(), Root: tree.Root(), Time: t0}, signer)
			if err != nil {
				b.Fatal(err)
			}
			cp, _ := json.Marshal(map[string]string{"checkpoint": string(msg)})
			cps.Write(append(cp, '\n'))
		}
	}
	head, _ := json.Marshal(map[string]auditlog.ExportHeader{"header": {Format: auditlog.ExportFormat,
		Origin: signer.Name(), Key: vkey, ExportedAt: t0, Size: records}})
	return slices.Concat(append(head, '\n'), cps.Bytes(), recs.Bytes()), vkey
}

// BenchmarkVerifyExportMillion verifies an export file of a million
// records offline, as lapse audit verify --file does: every line decoded,
// every record's hash, the chain, the tree and the hundred checkpoints.
func BenchmarkVerifyExportMillion(b *testing.B) {
	file, vkey := millionExport(b)
	b.SetBytes(int64(len(file)))
	cpu := cpuTime()
	for b.Loop() {
		res, _, err := auditlog.VerifyExport(bytes.NewReader(file), vkey)
		if err != nil {
			b.Fatal(err)
		}
		if res.Records != 1_000_000 || res.Checkpoints != 100 {
			b.Fatalf("verified %+v", res)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/verify")
	b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/verify")
}

// cpuTime returns the CPU time (user and system) this process used so far:
// on a shared machine it tells the work done from the wait for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
