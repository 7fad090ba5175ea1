package main

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/signals"
)

func TestHistoryFeedsRisk(t *testing.T) {
	st := lapsetest.OpenStore(t)
	db, err := signals.OpenGeoIP(lapsetest.WriteGeoIP(t, map[string]mmdbtype.Map{"2001:db8::/32": lapsetest.GeoIPCountry("DE")}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	net := &signals.Network{GeoIP: db}
	h := &history{store: st, network: net, logger: slog.New(slog.DiscardHandler)}
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	add := func(i int) {
		r, err := lapse.NewRequest(lapse.Request{ID: fmt.Sprintf("r%d", i), User: "alice", Resource: "db", Role: "read",
			Reason: "x", Duration: time.Hour, ClientIP: "2001:db8::1"}, 0, time.Hour, at.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Tx(context.Background(), func(ctx context.Context, tx lapse.Tx) error { return tx.CreateRequest(ctx, &r) }); err != nil {
			t.Fatal(err)
		}
	}
	for i := range minHistory - 1 {
		add(i)
	}
	if u := h.of(context.Background(), "alice", at.Add(time.Hour)); u.countries != nil || u.hours != nil {
		t.Fatalf("habits from %d requests: %+v", minHistory-1, u)
	}
	add(minHistory)
	u := h.of(context.Background(), "alice", at.Add(2*time.Hour))
	if len(u.countries) != 1 || u.countries[0] != "DE" || len(u.hours) != 1 || u.hours[0] != 9 {
		t.Fatalf("habits: %+v", u)
	}
	risk := signals.Risk(signals.RiskInput{Network: lapse.NetworkSignals{Country: "FR"}, KnownCountries: u.countries,
		UsualHours: u.hours, Hour: 3, Device: lapse.DeviceSignals{Known: lapse.FlagTrue, Managed: lapse.FlagTrue,
			DiskEncrypted: lapse.FlagTrue, OSUpToDate: lapse.FlagTrue}, Now: at})
	if risk.Score != 30 {
		t.Fatalf("risk from a new country outside usual hours: %d %v", risk.Score, risk.Reasons)
	}
}
