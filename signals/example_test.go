package signals_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/signals"
)

func ExampleNetwork_ClientIP() {
	n := &signals.Network{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}

	// Behind the load balancer at 10.0.0.2: the header names the client,
	// and what the client put in front of it is not believed.
	fmt.Println(n.ClientIP("10.0.0.2:443", []string{"203.0.113.7, 81.2.69.142"}))

	// Straight from the internet: the header is ignored.
	fmt.Println(n.ClientIP("81.2.69.142:51234", []string{"10.9.9.9"}))
	// Output:
	// 81.2.69.142
	// 81.2.69.142
}

func ExampleRisk() {
	now := time.Date(2026, 3, 2, 22, 0, 0, 0, time.UTC)
	r := signals.Risk(signals.RiskInput{
		Device: lapse.DeviceSignals{
			Known: lapse.FlagTrue, Managed: lapse.FlagTrue,
			DiskEncrypted: lapse.FlagTrue, OSUpToDate: lapse.FlagFalse,
			PostureAt: now.Add(-5 * time.Minute),
		},
		Network:        lapse.NetworkSignals{Country: "FR"},
		KnownCountries: []string{"DE"},
		UsualHours:     []int{9, 10, 11, 12, 13, 14, 15, 16, 17},
		Hour:           now.Hour(),
		MaxPostureAge:  time.Hour,
		Now:            now,
	})
	fmt.Println(r.Score, r.Reasons)
	// Output:
	// 40 [+10 OS out of date +20 new country FR +10 outside usual hours]
}
