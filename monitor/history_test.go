package monitor_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/monitor"
	"github.com/lapse-access/lapse/signals"
)

func TestHistoryFeedsRisk(t *testing.T) {
	st := lapsetest.OpenStore(t)
	h := &monitor.History{Store: st, Country: geoCountry(t), Logger: slog.New(slog.DiscardHandler)}
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	add := func(i int) {
		r, err := lapse.NewRequest(lapse.Request{ID: fmt.Sprintf("r%d", i), User: "alice", Resource: "db", Role: "read",
			Reason: "x", Duration: time.Hour, ClientIP: "192.0.2.1", Device: "laptop-1"}, 0, time.Hour, at.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Tx(context.Background(), func(ctx context.Context, tx lapse.Tx) error { return tx.CreateRequest(ctx, &r) }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range monitor.MinHistory - 1 {
		add(i)
	}
	if u := h.Of(context.Background(), "alice", at.Add(time.Hour)); u.Countries != nil || u.Hours != nil || u.Devices != nil {
		t.Fatalf("habits from %d requests: %+v", monitor.MinHistory-1, u)
	}
	add(monitor.MinHistory)
	u := h.Of(context.Background(), "alice", at.Add(2*time.Hour))
	if len(u.Countries) != 1 || u.Countries[0] != "DE" || len(u.Hours) != 1 || u.Hours[0] != 9 || len(u.Devices) != 1 || u.Devices[0] != "laptop-1" {
		t.Fatalf("habits: %+v", u)
	}
	risk := signals.Risk(signals.RiskInput{Network: lapse.NetworkSignals{Country: "FR"}, KnownCountries: u.Countries,
		UsualHours: u.Hours, Hour: 3, Device: lapse.DeviceSignals{Known: lapse.FlagTrue, Managed: lapse.FlagTrue,
			DiskEncrypted: lapse.FlagTrue, OSUpToDate: lapse.FlagTrue}, OpenAlerts: 1, Now: at})
	if risk.Score != 45 {
		t.Fatalf("risk from a new country outside usual hours with an open alert: %d %v", risk.Score, risk.Reasons)
	}
}
