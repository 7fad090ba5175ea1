package monitor_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
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
			DiskEncrypted: lapse.FlagTrue, OSUpToDate: lapse.FlagTrue}, OpenAlerts: []string{monitor.RuleRequestBurst}, Now: at})
	if risk.Score != 45 {
		t.Fatalf("risk from a new country outside usual hours with an open alert: %d %v", risk.Score, risk.Reasons)
	}
}

// A request from a new country at an unusual hour raises the alerts of
// those rules. While the score still measures the country and the hour
// itself, the alerts do not add them again; once the user's habits have
// learned them, the open alerts carry the facts until acknowledged.
func TestRiskCountsEachFactOnce(t *testing.T) {
	st := lapsetest.OpenStore(t)
	seed(t, st, "alice", nineToFive(6))
	w := newWatcher(t, st, monitor.DefaultRules())
	at := day.Add(3 * time.Hour)
	raised := submit(t, w, st, "night", "alice", past{at: at, ip: "198.51.100.7", device: "laptop-1"})
	var names []string
	for _, a := range raised {
		names = append(names, a.Rule)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{monitor.RuleNewCountry, monitor.RuleUnusualHour}) {
		t.Fatalf("raised %v, want new_country and unusual_hour", names)
	}
	clean := lapse.DeviceSignals{Known: lapse.FlagTrue, Managed: lapse.FlagTrue, DiskEncrypted: lapse.FlagTrue, OSUpToDate: lapse.FlagTrue}
	score := func(now time.Time) lapse.RiskSignals {
		t.Helper()
		h := w.History.Of(t.Context(), "alice", now)
		open, err := w.History.OpenAlertRules(t.Context(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		return signals.Risk(signals.RiskInput{Device: clean, Network: lapse.NetworkSignals{Country: "FR"}, Hour: now.UTC().Hour(),
			KnownCountries: h.Countries, UsualHours: h.Hours, RecentDenials: h.Refused, OpenAlerts: open, Now: now})
	}
	// Within the minute the habits are cached: France and 03:00 are still
	// new to them.
	if r := score(at.Add(30 * time.Second)); r.Score != 30 || !slices.Equal(r.Reasons, []string{"+20 new country FR", "+10 outside usual hours"}) {
		t.Errorf("risk while the score measures the country and the hour: %d %v, want 30", r.Score, r.Reasons)
	}
	// Read again, the habits hold the night request: the alerts count.
	if r := score(at.Add(2 * time.Minute)); r.Score != 30 || !slices.Equal(r.Reasons, []string{"+30 2 open alerts"}) {
		t.Errorf("risk once the habits learned the country and the hour: %d %v, want 30", r.Score, r.Reasons)
	}
}
