package metrics

import "github.com/prometheus/client_golang/prometheus"

func newExportErrors() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lapse_audit_export_errors_total", Help: "Failed deliveries of audit records to an export sink, by sink.",
	}, []string{"sink"})
}

// AddExportSink publishes lapse_audit_export_backlog{sink=name}, read from
// backlog at scrape time: the audit records committed that the sink has not
// acknowledged yet. It fails if the sink was added before.
func (m *Metrics) AddExportSink(name string, backlog func() int64) error {
	m.export.WithLabelValues(name) // the counter shows 0 from the start
	return m.reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "lapse_audit_export_backlog",
		Help:        "Audit records not yet delivered to an export sink.",
		ConstLabels: prometheus.Labels{"sink": name},
	}, func() float64 { return float64(backlog()) }))
}

// ExportError counts one failed delivery to the named sink.
func (m *Metrics) ExportError(sink string) {
	m.export.WithLabelValues(sink).Inc()
}
