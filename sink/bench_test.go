package sink_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/sink"
	"github.com/lapse-access/lapse/sqlstore"
)

// discard is a sink that acknowledges everything at once: the baseline of
// reading the log and recording the cursor.
type discard struct{ name string }

func (d discard) Name() string                                    { return d.name }
func (discard) Deliver(context.Context, []lapse.AuditEvent) error { return nil }
func (discard) Close() error                                      { return nil }

// BenchmarkExport measures how fast a backlog of audit records is exported:
// each iteration exports benchRecords records from a fresh cursor to the
// sink, through the worker (store reads, delivery, cursor updates).
func BenchmarkExport(b *testing.B) {
	const benchRecords = 20_000
	st, err := sqlstore.OpenSQLite(b.Context(), filepath.Join(b.TempDir(), "lapse.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	evs := make([]lapse.AuditEvent, 0, 1000)
	for i := range benchRecords {
		r := lapse.Request{ID: "r" + string(rune('a'+i%26)), User: "alice", Resource: "orders-db", Role: "read", State: lapse.StateActive}
		evs = append(evs, lapse.NewAuditEvent(lapse.EvActivity, "lapse", "", r, map[string]any{"kind": "query", "details": map[string]string{"client_addr": "192.0.2.1", "query": "SELECT * FROM orders WHERE id = $1"}}, t0))
		if len(evs) == cap(evs) {
			if err := st.Tx(b.Context(), func(ctx context.Context, tx lapse.Tx) error { return tx.AppendAudit(ctx, evs...) }); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
		}
	}
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Both formats are decoded into one value per record, as a
		// collector that stores records would.
		var evs []json.RawMessage
		if r.Header.Get("Content-Type") == "application/json" {
			if err := json.NewDecoder(r.Body).Decode(&evs); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
		} else {
			dec := json.NewDecoder(r.Body)
			for {
				var ev json.RawMessage
				if err := dec.Decode(&ev); err == io.EOF {
					break
				} else if err != nil {
					http.Error(w, err.Error(), 400)
					return
				}
				evs = append(evs, ev)
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer collector.Close()
	syslogSrv := startSyslog(b, "127.0.0.1:0", nil, &received{countOnly: true}).ln.Addr().String()
	sinks := map[string]func(name string) sink.Sink{
		"discard":   func(n string) sink.Sink { return discard{n} },
		"http-json": func(n string) sink.Sink { return &sink.HTTP{SinkName: n, URL: collector.URL, Token: "t"} },
		"http-jsonl": func(n string) sink.Sink {
			return &sink.HTTP{SinkName: n, URL: collector.URL, Token: "t", Format: sink.FormatJSONLines}
		},
		"syslog": func(n string) sink.Sink { return &sink.Syslog{SinkName: n, Address: syslogSrv} },
	}
	for _, name := range []string{"discard", "http-json", "http-jsonl", "syslog"} {
		b.Run(name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				s := sinks[name](name + "-" + time.Now().Format("150405.000000000"))
				w := sink.NewWorker(s, st)
				w.Logger = slog.New(slog.DiscardHandler)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- w.Run(ctx) }()
				for {
					cur, _ := st.SinkCursor(context.Background(), s.Name())
					if cur == benchRecords {
						break
					}
					time.Sleep(time.Millisecond)
				}
				cancel()
				<-done
				s.Close()
			}
			b.ReportMetric(float64(benchRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
