package signals_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/signals"
)

func TestRisk(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC)
	good := lapse.DeviceSignals{
		ID:            "mac-1",
		Known:         lapse.FlagTrue,
		Managed:       lapse.FlagTrue,
		DiskEncrypted: lapse.FlagTrue,
		OSUpToDate:    lapse.FlagTrue,
		PostureAt:     now.Add(-10 * time.Minute),
	}
	with := func(f func(*lapse.DeviceSignals)) lapse.DeviceSignals {
		d := good
		f(&d)
		return d
	}
	clean := func(f func(*signals.RiskInput)) signals.RiskInput {
		in := signals.RiskInput{
			Device:         good,
			Network:        lapse.NetworkSignals{Country: "DE"},
			KnownCountries: []string{"DE", "NL"},
			UsualHours:     []int{8, 9, 10, 11, 12, 13, 14, 15, 16, 17},
			Hour:           14,
			MaxPostureAge:  time.Hour,
			Now:            now,
		}
		if f != nil {
			f(&in)
		}
		return in
	}
	tests := []struct {
		name    string
		in      signals.RiskInput
		score   int
		reasons []string
	}{
		{"nothing known", signals.RiskInput{}, 30, []string{"+30 device unknown"}},
		{"clean", clean(nil), 0, []string{}},
		{"no device named", clean(func(in *signals.RiskInput) { in.Device = lapse.DeviceSignals{} }),
			30, []string{"+30 device unknown"}},
		{"device not in registry, posture ignored", clean(func(in *signals.RiskInput) {
			in.Device = lapse.DeviceSignals{ID: "x", Known: lapse.FlagFalse}
		}), 30, []string{"+30 device unknown"}},
		{"not managed", clean(func(in *signals.RiskInput) {
			in.Device = with(func(d *lapse.DeviceSignals) { d.Managed = lapse.FlagFalse })
		}), 25, []string{"+25 device not managed"}},
		{"management unknown", clean(func(in *signals.RiskInput) {
			in.Device = with(func(d *lapse.DeviceSignals) { d.Managed = lapse.FlagUnknown })
		}), 25, []string{"+25 device management unknown"}},
		{"disk not encrypted", clean(func(in *signals.RiskInput) {
			in.Device = with(func(d *lapse.DeviceSignals) { d.DiskEncrypted = lapse.FlagFalse })
		}), 10, []string{"+10 disk not encrypted"}},
		{"disk encryption unknown", clean(func(in *signals.RiskInput) {
			in.Device = with(func(d *lapse.DeviceSignals) { d.DiskEncrypted = lapse.FlagUnknown })
		}), 10, []string{"+10 disk encryption unknown"}},
		{"os out of date", clean(func(in *signals.RiskInput) {
			in.Device = with(func(d *lapse.DeviceSignals) { d.OSUpToDate = lapse.FlagFalse })
		}), 10, []string{"+10 OS out of date"}},
		{"os unknown", clean(func(in *signals.RiskInput) {
			in.Device = with(func(d *lapse.DeviceSignals) { d.OSUpToDate = lapse.FlagUnknown })
		}), 10, []string{"+10 OS version unknown"}},
		{"posture stale", clean(func(in *signals.RiskInput) {
			in.Device = with(func(d *lapse.DeviceSignals) { d.PostureAt = now.Add(-61 * time.Minute) })
		}), 15, []string{"+15 posture older than 1h"}},
		{"posture exactly max age is fresh", clean(func(in *signals.RiskInput) {
			in.Device = with(func(d *lapse.DeviceSignals) { d.PostureAt = now.Add(-time.Hour) })
		}), 0, []string{}},
		{"posture stale in minutes", clean(func(in *signals.RiskInput) {
			in.MaxPostureAge = 90 * time.Minute
			in.Device = with(func(d *lapse.DeviceSignals) { d.PostureAt = now.Add(-2 * time.Hour) })
		}), 15, []string{"+15 posture older than 90m"}},
		{"posture never reported", clean(func(in *signals.RiskInput) {
			in.Device = with(func(d *lapse.DeviceSignals) { d.PostureAt = time.Time{} })
		}), 15, []string{"+15 no posture reported"}},
		{"posture age not checked without max", clean(func(in *signals.RiskInput) {
			in.MaxPostureAge = 0
			in.Device = with(func(d *lapse.DeviceSignals) { d.PostureAt = time.Time{} })
		}), 0, []string{}},
		{"new country", clean(func(in *signals.RiskInput) { in.Network.Country = "FR" }),
			20, []string{"+20 new country FR"}},
		{"known country, any case", clean(func(in *signals.RiskInput) { in.Network.Country = "nl" }),
			0, []string{}},
		{"country unknown is not new", clean(func(in *signals.RiskInput) { in.Network.Country = "" }),
			0, []string{}},
		{"no country history", clean(func(in *signals.RiskInput) {
			in.Network.Country = "FR"
			in.KnownCountries = nil
		}), 0, []string{}},
		{"outside usual hours", clean(func(in *signals.RiskInput) { in.Hour = 3 }),
			10, []string{"+10 outside usual hours"}},
		{"midnight outside usual hours", clean(func(in *signals.RiskInput) { in.Hour = 0 }),
			10, []string{"+10 outside usual hours"}},
		{"usual hours unknown", clean(func(in *signals.RiskInput) {
			in.Hour = 3
			in.UsualHours = nil
		}), 0, []string{}},
		{"hour out of range is not counted", clean(func(in *signals.RiskInput) { in.Hour = 24 }),
			0, []string{}},
		{"one denial", clean(func(in *signals.RiskInput) { in.RecentDenials = 1 }),
			5, []string{"+5 1 recent denial"}},
		{"three denials", clean(func(in *signals.RiskInput) { in.RecentDenials = 3 }),
			15, []string{"+15 3 recent denials"}},
		{"denials capped", clean(func(in *signals.RiskInput) { in.RecentDenials = 9 }),
			20, []string{"+20 9 recent denials"}},
		{"negative counts ignored", clean(func(in *signals.RiskInput) {
			in.RecentDenials = -4
		}), 0, []string{}},
		{"one alert", clean(func(in *signals.RiskInput) { in.OpenAlerts = []string{"new_device"} }),
			15, []string{"+15 1 open alert"}},
		{"alerts capped", clean(func(in *signals.RiskInput) {
			in.OpenAlerts = []string{"new_device", "request_burst", "activity_outside_grant", "two_countries", "new_device"}
		}), 30, []string{"+30 5 open alerts"}},
		// Each fact counts once: by the score's own measure, or by the
		// alert about it when the score does not measure it now.
		{"new country and its alert", clean(func(in *signals.RiskInput) {
			in.Network.Country = "FR"
			in.OpenAlerts = []string{lapse.RuleNewCountry}
		}), 20, []string{"+20 new country FR"}},
		{"unusual hour and its alert", clean(func(in *signals.RiskInput) {
			in.Hour = 3
			in.OpenAlerts = []string{lapse.RuleUnusualHour, "new_device"}
		}), 25, []string{"+10 outside usual hours", "+15 1 open alert"}},
		{"denials and their burst", clean(func(in *signals.RiskInput) {
			in.RecentDenials = 5
			in.OpenAlerts = []string{lapse.RuleDenialBurst}
		}), 20, []string{"+20 5 recent denials"}},
		{"alerts of habits already learned", clean(func(in *signals.RiskInput) {
			in.Network.Country = "DE"
			in.Hour = 9
			in.OpenAlerts = []string{lapse.RuleNewCountry, lapse.RuleUnusualHour, lapse.RuleDenialBurst}
		}), 30, []string{"+30 3 open alerts"}},
		{"sum of several", clean(func(in *signals.RiskInput) {
			in.Device = with(func(d *lapse.DeviceSignals) { d.DiskEncrypted = lapse.FlagFalse })
			in.Network.Country = "FR"
			in.Hour = 22
		}), 40, []string{"+10 disk not encrypted", "+20 new country FR", "+10 outside usual hours"}},
		{"capped at 100, every reason listed", clean(func(in *signals.RiskInput) {
			in.Device = lapse.DeviceSignals{
				Known: lapse.FlagTrue, Managed: lapse.FlagFalse, DiskEncrypted: lapse.FlagFalse,
				OSUpToDate: lapse.FlagFalse, PostureAt: now.Add(-48 * time.Hour),
			}
			in.Network.Country = "FR"
			in.Hour = 2
			in.RecentDenials = 4
			in.OpenAlerts = []string{"new_device", "two_countries"}
		}), 100, []string{
			"+25 device not managed", "+10 disk not encrypted", "+10 OS out of date",
			"+15 posture older than 1h", "+20 new country FR", "+10 outside usual hours",
			"+20 4 recent denials", "+30 2 open alerts",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want := lapse.RiskSignals{Known: true, Score: tt.score, Reasons: tt.reasons}
			if diff := cmp.Diff(want, signals.Risk(tt.in)); diff != "" {
				t.Errorf("Risk (-want +got):\n%s", diff)
			}
		})
	}
}
