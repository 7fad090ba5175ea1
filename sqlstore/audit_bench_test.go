package sqlstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/auditlog"
	"github.com/lapse-access/lapse/sqlstore"
)

// bigLog is a database file with a million audit records and a checkpoint
// every 10,000, built once per test binary and removed by TestMain.
var bigLog struct {
	once sync.Once
	dir  string
	err  error
}

const (
	bigLogRecords = 1_000_000
	bigLogUsers   = 1000
)

// openBigLog opens a copy-free store on the shared million-record log
// and a Log that verifies it.
func openBigLog(b *testing.B) (*sqlstore.Store, *auditlog.Log) {
	b.Helper()
	bigLog.once.Do(func() { bigLog.dir, bigLog.err = buildBigLog() })
	if bigLog.err != nil {
		b.Fatal(bigLog.err)
	}
	s, err := sqlstore.OpenSQLite(b.Context(), filepath.Join(bigLog.dir, "lapse.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	k, err := auditlog.LoadOrCreateFileKey(filepath.Join(bigLog.dir, "audit.key"), "")
	if err != nil {
		b.Fatal(err)
	}
	return s, &auditlog.Log{Store: s, Keys: k}
}

func buildBigLog() (string, error) {
	dir, err := os.MkdirTemp("", "lapse-biglog-")
	if err != nil {
		return "", err
	}
	ctx := context.Background()
	s, err := sqlstore.OpenSQLite(ctx, filepath.Join(dir, "lapse.db"))
	if err != nil {
		return dir, err
	}
	defer s.Close()
	k, err := auditlog.LoadOrCreateFileKey(filepath.Join(dir, "audit.key"), "lapse/bench")
	if err != nil {
		return dir, err
	}
	log := &auditlog.Log{Store: s, Keys: k}
	now := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	const batch = 1000
	evs := make([]lapse.AuditEvent, batch)
	for n := 0; n < bigLogRecords; n += batch {
		for i := range evs {
			seq := n + i
			r := lapse.Request{ID: fmt.Sprintf("req-%d", seq/5), User: fmt.Sprintf("user%d", seq%bigLogUsers),
				Resource: fmt.Sprintf("res%d", seq%100), Role: "read", State: lapse.StateActive}
			evs[i] = lapse.NewAuditEvent(lapse.EvActivity, "lapse", lapse.StateActive, r,
				map[string]any{"client_addr": "10.0.0.7", "query": "SELECT * FROM orders WHERE id = $1"}, now.Add(time.Duration(seq)*time.Millisecond))
		}
		if err := s.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return tx.AppendAudit(ctx, evs...) }); err != nil {
			return dir, err
		}
		if (n+batch)%10_000 == 0 {
			if _, err := log.Checkpoint(ctx); err != nil {
				return dir, err
			}
		}
	}
	return dir, nil
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

// removeBigLog removes the million-record log that benchmarks built, if
// any; TestMain calls it.
func removeBigLog() {
	if bigLog.dir != "" {
		os.RemoveAll(bigLog.dir)
	}
}

// BenchmarkVerifyMillion verifies a log of a million records against its
// hundred checkpoints: every record's hash and chain, the Merkle tree,
// each checkpoint's signature and root. BenchmarkScanMillion reads the
// same records and does nothing else: the baseline.
func BenchmarkVerifyMillion(b *testing.B) {
	_, log := openBigLog(b)
	cpu := cpuTime()
	for b.Loop() {
		res, err := log.Verify(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if res.Records != bigLogRecords || res.Checkpoints != bigLogRecords/10_000 {
			b.Fatalf("verified %+v", res)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Seconds())/float64(b.N), "s/verify")
	b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/verify")
}

func BenchmarkScanMillion(b *testing.B) {
	s, _ := openBigLog(b)
	cpu := cpuTime()
	for b.Loop() {
		n := 0
		if err := s.ScanAudit(b.Context(), func(lapse.AuditEvent) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != bigLogRecords {
			b.Fatalf("scanned %d", n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Seconds())/float64(b.N), "s/scan")
	b.ReportMetric((cpuTime()-cpu).Seconds()/float64(b.N), "cpu-s/scan")
}

// BenchmarkAuditQueryUser asks for one user's records in a log of a
// million (a thousand users, a thousand records each): the first page, as
// GET /v1/audit?user= does, and one with a time range.
func BenchmarkAuditQueryUser(b *testing.B) {
	s, _ := openBigLog(b)
	start := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		f    lapse.AuditFilter
		want int
	}{
		{"user", lapse.AuditFilter{User: "user42"}, 1000},
		{"user+time", lapse.AuditFilter{User: "user42", Since: start.Add(400 * time.Second), Until: start.Add(600 * time.Second)}, 200},
		{"user+type", lapse.AuditFilter{User: "user42", Type: lapse.EvActivity, Limit: 100}, 100},
	} {
		b.Run(tc.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				f := tc.f
				f.User = fmt.Sprintf("user%d", i%bigLogUsers)
				i++
				evs, err := s.ListAudit(b.Context(), f)
				if err != nil {
					b.Fatal(err)
				}
				if len(evs) != tc.want {
					b.Fatalf("%d records, want %d", len(evs), tc.want)
				}
			}
		})
	}
}
