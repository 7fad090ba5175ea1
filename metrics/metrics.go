// Package metrics exposes Lapse's Prometheus metrics. They are derived from
// the audit events of committed transactions, so they count exactly what
// the audit log records, plus gauges read from the store at scrape time.
package metrics

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lapse-access/lapse"
)

// Metrics holds the collectors of one server.
type Metrics struct {
	reg       *prometheus.Registry
	events    *prometheus.CounterVec
	outcomes  *prometheus.CounterVec
	lag       prometheus.Histogram
	connector *prometheus.CounterVec
	export    *prometheus.CounterVec
	leases    *prometheus.GaugeVec
	// Connector names the connector of a resource, for error labels.
	connectorOf func(resource string) string
}

// New registers the metrics. connectorOf names a resource's connector;
// count returns how many requests are in a state, read at scrape time.
func New(connectorOf func(resource string) string, count func(ctx context.Context, s lapse.State) (int, error), logger *slog.Logger) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lapse_audit_events_total", Help: "Audit events recorded, by type.",
		}, []string{"type"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lapse_requests_total", Help: "Access requests by outcome: approved, pending, refused, denied, cancelled, timed_out, failed.",
		}, []string{"outcome"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lapse_revocation_lag_seconds",
			Help:    "Time from a grant's expiry to the moment its revocation was confirmed.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		connector: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lapse_connector_errors_total", Help: "Failed connector calls, by connector and step.",
		}, []string{"connector", "step"}),
		export:      newExportErrors(),
		leases:      newLeases(),
		connectorOf: connectorOf,
	}
	m.reg.MustRegister(m.events, m.outcomes, m.lag, m.connector, m.export, m.leases,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, st := range []lapse.State{lapse.StateActive, lapse.StatePending, lapse.StateRevoking} {
		st := st
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "lapse_requests",
			Help:        "Requests in a state now: active grants, pending approvals, unconfirmed revocations.",
			ConstLabels: prometheus.Labels{"state": string(st)},
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n, err := count(ctx, st)
			if err != nil {
				logger.Warn("count requests for metrics", "state", st, "err", err)
				return 0
			}
			return float64(n)
		}))
	}
	return m
}

// Observe counts committed audit events. Give it to the store's OnCommit.
func (m *Metrics) Observe(evs []lapse.AuditEvent) {
	for _, e := range evs {
		m.events.WithLabelValues(e.Type).Inc()
		switch e.Type {
		case lapse.EvRequested:
			m.outcomes.WithLabelValues(string(e.To)).Inc()
		case lapse.EvRefused:
			m.outcomes.WithLabelValues("refused").Inc()
		case lapse.EvDenied, lapse.EvCancelled, lapse.EvTimedOut, lapse.EvFailed:
			m.outcomes.WithLabelValues(string(e.To)).Inc()
		case lapse.EvEnded:
			var d struct {
				EndReason lapse.EndReason `json:"end_reason"`
				LagMS     *float64        `json:"lag_ms"`
			}
			if json.Unmarshal(e.Data, &d) == nil && d.LagMS != nil {
				m.lag.Observe(*d.LagMS / 1000)
			}
		case lapse.EvProvisionFailed:
			m.connector.WithLabelValues(m.connectorOf(e.Resource), "provision").Inc()
		case lapse.EvRevokeFailed:
			m.connector.WithLabelValues(m.connectorOf(e.Resource), "revoke").Inc()
		}
	}
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
