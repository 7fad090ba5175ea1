package policy_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/policy"
)

// thousand returns 1,000 per-resource policies over 500 resources, two
// roles each, plus the built-in policies of that catalog.
func thousand(tb testing.TB) (map[string][]byte, *lapse.Catalog) {
	c := &lapse.Catalog{}
	var src []byte
	for i := range 500 {
		name := fmt.Sprintf("db-%03d", i)
		c.Resources = append(c.Resources, lapse.Resource{Name: name, Environment: "prod", Roles: []lapse.Role{
			{Name: "read", MaxDuration: 4 * time.Hour, Requesters: []string{"eng"}, Approvers: []string{"leads"}},
			{Name: "admin", MaxDuration: time.Hour, Approvals: 2, Requesters: []string{"eng"}, Approvers: []string{"leads"}},
		}})
		src = fmt.Appendf(src, `@id("%[1]s-read") @reason("on-call may read %[1]s")
permit (principal in Group::"oncall", action == Action::"Request", resource == Role::"%[1]s/read")
when { context.duration_seconds <= 3600 && context.device.managed };
@id("%[1]s-country") @reason("%[1]s is only reachable from Germany")
forbid (principal, action, resource in Resource::"%[1]s") unless { context.network.country == "DE" };
`, name)
	}
	return map[string][]byte{"many.cedar": src}, c
}

func BenchmarkDecide1000(b *testing.B) {
	files, c := thousand(b)
	set, err := policy.Parse(files)
	if err != nil {
		b.Fatal(err)
	}
	builtin, err := policy.Builtin(c)
	if err != nil {
		b.Fatal(err)
	}
	e, err := policy.New(c, builtin, set)
	if err != nil {
		b.Fatal(err)
	}
	res, role, _ := c.Lookup("db-250", "read")
	in := lapse.DecisionInput{Action: lapse.PolicyRequest, Principal: lapse.Principal{Name: "alice", Groups: []string{"eng", "oncall"}},
		Resource: res, Role: role, Duration: time.Hour, Now: now, Signals: good()}
	if d := e.Decide(in); !d.Allow {
		b.Fatalf("denied: %v", d.Reasons)
	}
	times := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		e.Decide(in)
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Nanoseconds())/1000, "p50-µs")
}

func BenchmarkLoad1000(b *testing.B) {
	files, c := thousand(b)
	b.ReportAllocs()
	for b.Loop() {
		set, err := policy.Parse(files)
		if err != nil {
			b.Fatal(err)
		}
		builtin, err := policy.Builtin(c)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := policy.New(c, builtin, set); err != nil {
			b.Fatal(err)
		}
	}
}
