package signals

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lapse-access/lapse"
)

// The weights of the risk contributions; the package doc lists them.
const (
	weightUnknownDevice = 30
	weightNotManaged    = 25
	weightNotEncrypted  = 10
	weightOSOutOfDate   = 10
	weightStalePosture  = 15
	weightNewCountry    = 20
	weightUnusualHour   = 10
	weightPerDenial     = 5
	maxDenials          = 20
	weightPerAlert      = 15
	maxAlerts           = 30
	maxScore            = 100
	minHour, maxHour    = 0, 23
)

// RiskInput is what [Risk] scores.
type RiskInput struct {
	// Device is the device the request comes from.
	Device lapse.DeviceSignals
	// Network is where the request comes from.
	Network lapse.NetworkSignals
	// KnownCountries are the countries (ISO 3166-1 alpha-2) this user has
	// requested from before; empty when the user has no history.
	KnownCountries []string
	// UsualHours are the hours, 0–23, in which this user usually requests;
	// empty when unknown.
	UsualHours []int
	// Hour is the hour of the request, 0–23, in the same time zone as
	// UsualHours.
	Hour int
	// RecentDenials counts this user's recently denied requests.
	RecentDenials int
	// OpenAlerts are the rules of the open anomaly alerts about this user,
	// one entry per alert.
	OpenAlerts []string
	// MaxPostureAge is how old a device's posture may be before it counts
	// as stale; zero or less skips the check.
	MaxPostureAge time.Duration
	// Now is the time of the request; needed when MaxPostureAge is set.
	Now time.Time
}

// Risk scores in from 0 to 100 as the sum of the contributions listed in the
// package doc, capped at 100. Each contribution that applies is one entry
// of Reasons, in the order of that list, e.g. "+30 device unknown". The
// result is always Known, and Reasons is empty but not nil when the score
// is 0.
func Risk(in RiskInput) lapse.RiskSignals {
	s := scorer{reasons: []string{}}
	s.device(in.Device, in.MaxPostureAge, in.Now)
	newCountry := false
	if c := strings.ToUpper(in.Network.Country); c != "" && len(in.KnownCountries) > 0 &&
		!slices.ContainsFunc(in.KnownCountries, func(k string) bool { return strings.EqualFold(k, c) }) {
		s.add(weightNewCountry, "new country "+c)
		newCountry = true
	}
	unusualHour := false
	if len(in.UsualHours) > 0 && minHour <= in.Hour && in.Hour <= maxHour && !slices.Contains(in.UsualHours, in.Hour) {
		s.add(weightUnusualHour, "outside usual hours")
		unusualHour = true
	}
	if in.RecentDenials > 0 {
		s.add(min(in.RecentDenials*weightPerDenial, maxDenials), plural(in.RecentDenials, "recent denial"))
	}
	if n := countAlerts(in.OpenAlerts, newCountry, unusualHour, in.RecentDenials > 0); n > 0 {
		s.add(min(n*weightPerAlert, maxAlerts), plural(n, "open alert"))
	}
	return lapse.RiskSignals{Known: true, Score: min(s.score, maxScore), Reasons: s.reasons}
}

// countAlerts counts the open alerts that add to the score. Each fact is
// counted once: an alert of new_country, unusual_hour or denial_burst is
// left out when this request's score already holds its fact (a new
// country, an unusual hour, recent refusals). Once the user's habits have
// learned the country or the hour, the alert counts until an admin
// acknowledges it.
func countAlerts(rules []string, newCountry, unusualHour, denials bool) int {
	n := 0
	for _, r := range rules {
		switch {
		case r == lapse.RuleNewCountry && newCountry,
			r == lapse.RuleUnusualHour && unusualHour,
			r == lapse.RuleDenialBurst && denials:
			continue
		}
		n++
	}
	return n
}

// scorer sums contributions and lists their reasons.
type scorer struct {
	score   int
	reasons []string
}

func (s *scorer) add(weight int, reason string) {
	s.score += weight
	s.reasons = append(s.reasons, fmt.Sprintf("+%d %s", weight, reason))
}

func (s *scorer) device(d lapse.DeviceSignals, maxAge time.Duration, now time.Time) {
	if d.Known != lapse.FlagTrue {
		s.add(weightUnknownDevice, "device unknown")
		return
	}
	s.flag(d.Managed, weightNotManaged, "device not managed", "device management unknown")
	s.flag(d.DiskEncrypted, weightNotEncrypted, "disk not encrypted", "disk encryption unknown")
	s.flag(d.OSUpToDate, weightOSOutOfDate, "OS out of date", "OS version unknown")
	if maxAge > 0 {
		switch {
		case d.PostureAt.IsZero():
			s.add(weightStalePosture, "no posture reported")
		case now.Sub(d.PostureAt) > maxAge:
			s.add(weightStalePosture, "posture older than "+shortDuration(maxAge))
		}
	}
}

// flag adds weight unless f is true, with the reason for false or unknown.
func (s *scorer) flag(f lapse.Flag, weight int, ifFalse, ifUnknown string) {
	switch f {
	case lapse.FlagTrue:
	case lapse.FlagFalse:
		s.add(weight, ifFalse)
	default:
		s.add(weight, ifUnknown)
	}
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// shortDuration formats d as "1h", "90m" or "45s" when it is a whole number
// of those, and as time.Duration does otherwise.
func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}
