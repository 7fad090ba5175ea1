package monitor

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lapse-access/lapse"
)

// The anomaly rules, by name.
const (
	// RuleUnusualHour: a request in an hour (UTC) in which the user has
	// not requested before, once they have a history.
	RuleUnusualHour = lapse.RuleUnusualHour
	// RuleNewCountry: a request from a country the user has not requested
	// from before, once they have a history.
	RuleNewCountry = lapse.RuleNewCountry
	// RuleNewDevice: a request from a device the user has not requested
	// from before, once they have a history.
	RuleNewDevice = "new_device"
	// RuleRequestBurst: Count requests by one user within Window.
	RuleRequestBurst = "request_burst"
	// RuleDenialBurst: Count refused or denied requests of one user within
	// Window.
	RuleDenialBurst = lapse.RuleDenialBurst
	// RuleOutsideGrant: activity reported for a user, resource and role
	// that no grant covered when it happened.
	RuleOutsideGrant = "activity_outside_grant"
	// RuleTwoCountries: one grant's access used from two countries.
	RuleTwoCountries = "two_countries"
)

// RuleNames lists the rules in the order they are documented.
var RuleNames = []string{RuleUnusualHour, RuleNewCountry, RuleNewDevice, RuleRequestBurst, RuleDenialBurst, RuleOutsideGrant, RuleTwoCountries}

// Rule configures one anomaly rule.
type Rule struct {
	Enabled  bool
	Severity string
	// Revoke revokes the grant the alert is about, through the broker, as
	// the actor "lapse-monitor" with the rule as the reason.
	Revoke bool
	// Count and Window are the thresholds of the burst rules: Count events
	// within Window raise the alert.
	Count  int
	Window time.Duration
}

// Rules configures every rule, by name.
type Rules map[string]Rule

// DefaultRules returns every rule enabled with its default severity and
// thresholds, and none revoking.
func DefaultRules() Rules {
	return Rules{
		RuleUnusualHour:  {Enabled: true, Severity: lapse.SeverityLow},
		RuleNewCountry:   {Enabled: true, Severity: lapse.SeverityMedium},
		RuleNewDevice:    {Enabled: true, Severity: lapse.SeverityLow},
		RuleRequestBurst: {Enabled: true, Severity: lapse.SeverityMedium, Count: 20, Window: 10 * time.Minute},
		RuleDenialBurst:  {Enabled: true, Severity: lapse.SeverityHigh, Count: 5, Window: 10 * time.Minute},
		RuleOutsideGrant: {Enabled: true, Severity: lapse.SeverityHigh},
		RuleTwoCountries: {Enabled: true, Severity: lapse.SeverityCritical},
	}
}

// Validate reports the first problem of rs: an unknown rule, a bad
// severity, or a burst rule without thresholds.
func (rs Rules) Validate() error {
	for name, r := range rs {
		if !slices.Contains(RuleNames, name) {
			return lapse.Invalidf("unknown rule %q (known: %s)", name, strings.Join(RuleNames, ", "))
		}
		if !lapse.ValidSeverity(r.Severity) {
			return lapse.Invalidf("rule %s: severity %q is not one of %s", name, r.Severity, strings.Join(lapse.Severities, ", "))
		}
		burst := name == RuleRequestBurst || name == RuleDenialBurst
		if burst && r.Enabled && (r.Count < 1 || r.Window <= 0) {
			return lapse.Invalidf("rule %s: needs count of 1 or more and a positive window", name)
		}
		if !burst && (r.Count != 0 || r.Window != 0) {
			return fmt.Errorf("rule %s takes no count or window: %w", name, lapse.ErrInvalid)
		}
	}
	return nil
}

// on returns the rule named name if it is enabled.
func (rs Rules) on(name string) (Rule, bool) {
	r, ok := rs[name]
	return r, ok && r.Enabled
}
