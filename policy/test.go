package policy

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lapse-access/lapse"
)

// Case is one policy test: who asks for what, in which circumstances, and
// the decision expected for each action.
type Case struct {
	Name     string   `yaml:"name"`
	User     string   `yaml:"user"`
	Groups   []string `yaml:"groups"`
	Resource string   `yaml:"resource"`
	Role     string   `yaml:"role"`
	// Duration is a Go duration ("1h"); default 1h.
	Duration string  `yaml:"duration"`
	Reason   string  `yaml:"reason"`
	Ticket   string  `yaml:"ticket"`
	Context  Context `yaml:"context"`
	// Now is the time of the decision (RFC 3339); default the test run's.
	Now string `yaml:"now"`
	// Expect maps actions (Request, AutoApprove, Approve, Extend) to
	// "allow" or "deny"; actions left out are not checked.
	Expect map[lapse.PolicyAction]string `yaml:"expect"`
	// Approvals, if set, is the number of human approvals expected.
	Approvals *int `yaml:"approvals"`
}

// Context is a test case's signals; absent values are unknown.
type Context struct {
	Device struct {
		ID            string `yaml:"id"`
		Known         *bool  `yaml:"known"`
		Managed       *bool  `yaml:"managed"`
		DiskEncrypted *bool  `yaml:"disk_encrypted"`
		OSUpToDate    *bool  `yaml:"os_up_to_date"`
		// PostureAgeSeconds is how old the posture report is.
		PostureAgeSeconds *int `yaml:"posture_age_seconds"`
	} `yaml:"device"`
	Network struct {
		IP      string `yaml:"ip"`
		Country string `yaml:"country"`
		Trusted *bool  `yaml:"trusted_network"`
	} `yaml:"network"`
	Risk struct {
		Score   *int     `yaml:"score"`
		Reasons []string `yaml:"reasons"`
	} `yaml:"risk"`
	MFA struct {
		Present    *bool `yaml:"present"`
		AgeSeconds *int  `yaml:"age_seconds"`
	} `yaml:"mfa"`
}

func flagOf(b *bool) lapse.Flag {
	if b == nil {
		return lapse.FlagUnknown
	}
	return lapse.FlagOf(*b)
}

// Signals converts the context to the signals of a decision at now.
func (c Context) Signals(now time.Time) (lapse.Signals, error) {
	var s lapse.Signals
	s.Device.ID = c.Device.ID
	s.Device.Known, s.Device.Managed = flagOf(c.Device.Known), flagOf(c.Device.Managed)
	s.Device.DiskEncrypted, s.Device.OSUpToDate = flagOf(c.Device.DiskEncrypted), flagOf(c.Device.OSUpToDate)
	if c.Device.PostureAgeSeconds != nil {
		s.Device.PostureAt = now.Add(-time.Duration(*c.Device.PostureAgeSeconds) * time.Second)
	}
	if c.Network.IP != "" {
		ip, err := netip.ParseAddr(c.Network.IP)
		if err != nil {
			return s, lapse.Invalidf("network.ip %q is not an IP address", c.Network.IP)
		}
		s.Network.IP = ip
	}
	s.Network.Country, s.Network.Trusted = c.Network.Country, flagOf(c.Network.Trusted)
	if c.Risk.Score != nil {
		s.Risk = lapse.RiskSignals{Known: true, Score: *c.Risk.Score, Reasons: c.Risk.Reasons}
	}
	s.MFA.Present = flagOf(c.MFA.Present)
	if c.MFA.AgeSeconds != nil {
		s.MFA.At = now.Add(-time.Duration(*c.MFA.AgeSeconds) * time.Second)
	}
	return s, nil
}

// Input returns the decision input of the case for action, at now.
func (c Case) Input(e *Engine, action lapse.PolicyAction, now time.Time) (lapse.DecisionInput, error) {
	if c.Now != "" {
		t, err := time.Parse(time.RFC3339, c.Now)
		if err != nil {
			return lapse.DecisionInput{}, lapse.Invalidf("now: want an RFC 3339 time, got %q", c.Now)
		}
		now = t
	}
	res, role, err := e.catalog.Lookup(c.Resource, c.Role)
	if err != nil {
		return lapse.DecisionInput{}, err
	}
	d := time.Hour
	if c.Duration != "" {
		if d, err = time.ParseDuration(c.Duration); err != nil {
			return lapse.DecisionInput{}, lapse.Invalidf("duration %q: %v", c.Duration, err)
		}
	}
	sig, err := c.Context.Signals(now)
	if err != nil {
		return lapse.DecisionInput{}, err
	}
	reason := c.Reason
	if reason == "" {
		reason = "policy test"
	}
	return lapse.DecisionInput{Action: action, Principal: lapse.Principal{Name: c.User, Groups: c.Groups},
		Resource: res, Role: role, Duration: d, Reason: reason, Ticket: c.Ticket, Signals: sig, Now: now}, nil
}

// Failure is one expectation a case did not meet.
type Failure struct {
	Case    string
	Action  lapse.PolicyAction
	Want    string
	Got     string
	Reasons []string
}

func (f Failure) String() string {
	return fmt.Sprintf("%s: %s: want %s, got %s (%s)", f.Case, f.Action, f.Want, f.Got, strings.Join(f.Reasons, "; "))
}

// Report is the outcome of a test file.
type Report struct {
	Cases    int
	Checks   int
	Failures []Failure
}

// RunTests runs the YAML test cases in data ("cases: [...]") against e at
// now. Malformed cases are an error of kind [lapse.ErrInvalid].
func RunTests(e *Engine, data []byte, now time.Time) (Report, error) {
	var doc struct {
		Cases []Case `yaml:"cases"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return Report{}, lapse.Invalidf("policy tests: %v", err)
	}
	var rep Report
	for i, c := range doc.Cases {
		name := c.Name
		if name == "" {
			name = fmt.Sprintf("case %d", i+1)
		}
		if len(c.Expect) == 0 && c.Approvals == nil {
			return rep, lapse.Invalidf("policy tests: %s expects nothing", name)
		}
		rep.Cases++
		for action, want := range c.Expect {
			if want != "allow" && want != "deny" {
				return rep, lapse.Invalidf("policy tests: %s: %s: want allow or deny, got %q", name, action, want)
			}
			in, err := c.Input(e, action, now)
			if err != nil {
				return rep, fmt.Errorf("policy tests: %s: %w", name, err)
			}
			d := e.Decide(in)
			got := "deny"
			if d.Allow {
				got = "allow"
			}
			rep.Checks++
			if got != want {
				rep.Failures = append(rep.Failures, Failure{Case: name, Action: action, Want: want, Got: got, Reasons: d.Reasons})
			}
		}
		if c.Approvals != nil {
			in, err := c.Input(e, lapse.PolicyAutoApprove, now)
			if err != nil {
				return rep, fmt.Errorf("policy tests: %s: %w", name, err)
			}
			d := e.Decide(in)
			got := d.Approvals
			if d.Allow {
				got = 0
			}
			rep.Checks++
			if got != *c.Approvals {
				rep.Failures = append(rep.Failures, Failure{Case: name, Action: "approvals",
					Want: fmt.Sprint(*c.Approvals), Got: fmt.Sprint(got), Reasons: d.Reasons})
			}
		}
	}
	return rep, nil
}
