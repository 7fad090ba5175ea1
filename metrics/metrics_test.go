package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/metrics"
)

func TestObserve(t *testing.T) {
	m := metrics.New(func(string) string { return "orders-pg" },
		func(_ context.Context, s lapse.State) (int, error) {
			if s == lapse.StateActive {
				return 7, nil
			}
			return 0, nil
		}, slog.New(slog.DiscardHandler))
	now := time.Now()
	r := lapse.Request{ID: "r1", User: "alice", Resource: "orders-db", Role: "read", State: lapse.StateApproved}
	ended := r
	ended.State = lapse.StateEnded
	failed := r
	failed.State = lapse.StateRevoking
	m.Observe([]lapse.AuditEvent{
		lapse.NewAuditEvent(lapse.EvRequested, "alice", "", r, nil, now),
		lapse.NewAuditEvent(lapse.EvEnded, "lapse", lapse.StateRevoking, ended, map[string]any{"end_reason": "expired", "lag_ms": 120.0}, now),
		lapse.NewAuditEvent(lapse.EvRevokeFailed, "lapse", lapse.StateRevoking, failed, nil, now),
	})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`lapse_requests_total{outcome="approved"} 1`,
		`lapse_revocation_lag_seconds_count 1`,
		`lapse_revocation_lag_seconds_bucket{le="0.25"} 1`,
		`lapse_connector_errors_total{connector="orders-pg",step="revoke"} 1`,
		`lapse_requests{state="active"} 7`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestExportSink(t *testing.T) {
	m := metrics.New(func(string) string { return "" }, func(context.Context, lapse.State) (int, error) { return 0, nil }, slog.New(slog.DiscardHandler))
	if err := m.AddExportSink("siem", func() int64 { return 42 }); err != nil {
		t.Fatal(err)
	}
	if err := m.AddExportSink("siem", func() int64 { return 0 }); err == nil {
		t.Error("the same sink was added twice")
	}
	m.ExportError("siem")
	m.ExportError("siem")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{`lapse_audit_export_backlog{sink="siem"} 42`, `lapse_audit_export_errors_total{sink="siem"} 2`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
