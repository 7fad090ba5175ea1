package metrics

import "github.com/prometheus/client_golang/prometheus"

func newLeases() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lapse_lease_held",
		Help: "1 for each singleton task (audit export to a sink, activity sampling, reconciliation, checkpoint signing) whose lease this server holds, else 0.",
	}, []string{"lease"})
}

// SetLease records whether this server holds the named lease. Give it to
// the lease runners' OnChange.
func (m *Metrics) SetLease(name string, held bool) {
	v := 0.0
	if held {
		v = 1
	}
	m.leases.WithLabelValues(name).Set(v)
}
