package monitor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/monitor"
	"github.com/lapse-access/lapse/signals"
)

// geoCountry returns a country lookup backed by a real MaxMind-format
// database: 192.0.2.0/24 is DE, 198.51.100.0/24 FR, 203.0.113.0/24 US.
func geoCountry(t *testing.T) func(netip.Addr) string {
	t.Helper()
	db, err := signals.OpenGeoIP(lapsetest.WriteGeoIP(t, map[string]mmdbtype.Map{
		"192.0.2.0/24":    lapsetest.GeoIPCountry("DE"),
		"198.51.100.0/24": lapsetest.GeoIPCountry("FR"),
		"203.0.113.0/24":  lapsetest.GeoIPCountry("US"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	n := &signals.Network{GeoIP: db}
	return func(a netip.Addr) string { return n.Lookup(a).Country }
}

func newWatcher(t *testing.T, st lapse.Store, rules monitor.Rules) *monitor.Watcher {
	return &monitor.Watcher{
		Store: st, Rules: rules, Clock: newClock(), Logger: slog.New(slog.DiscardHandler),
		History: &monitor.History{Store: st, Country: geoCountry(t), Logger: slog.New(slog.DiscardHandler)},
	}
}

// past is one request of the crafted history.
type past struct {
	at     time.Time
	ip     string
	device string
}

// seed stores requests of user made at the given times, with their
// request.created audit records.
func seed(t *testing.T, st lapse.Store, user string, ps []past) {
	t.Helper()
	for i, p := range ps {
		r, err := lapse.NewRequest(lapse.Request{ID: fmt.Sprintf("%s-past-%d", user, i), User: user, Resource: "orders-db", Role: "read",
			Reason: "INC-1", Duration: time.Hour, ClientIP: p.ip, Device: p.device}, 1, time.Hour, p.at)
		if err != nil {
			t.Fatal(err)
		}
		err = st.Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error {
			if err := tx.CreateRequest(ctx, &r); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvRequested, user, "", r, nil, p.at))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// submit stores a new request the way the broker does, through the
// watched store, and returns the alerts raised with it.
func submit(t *testing.T, w *monitor.Watcher, st lapse.Store, id, user string, p past) []lapse.Alert {
	t.Helper()
	before, _ := st.LastAuditSeq(t.Context())
	r, err := lapse.NewRequest(lapse.Request{ID: id, User: user, Resource: "orders-db", Role: "read",
		Reason: "INC-2", Duration: time.Hour, ClientIP: p.ip, Device: p.device}, 1, time.Hour, p.at)
	if err != nil {
		t.Fatal(err)
	}
	err = w.Wrap(st).Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error {
		if err := tx.CreateRequest(ctx, &r); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, lapse.NewAuditEvent(lapse.EvRequested, user, "", r, nil, p.at))
	})
	if err != nil {
		t.Fatal(err)
	}
	return raisedAfter(t, st, before)
}

// raisedAfter returns the alerts whose alert.raised records come after
// seq, checking that each matches its row.
func raisedAfter(t *testing.T, st lapse.Store, seq int64) []lapse.Alert {
	t.Helper()
	evs, err := st.ListAudit(t.Context(), lapse.AuditFilter{AfterSeq: seq, Type: lapse.EvAlertRaised})
	if err != nil {
		t.Fatal(err)
	}
	all, err := st.ListAlerts(t.Context(), lapse.AlertFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []lapse.Alert
	for _, a := range all {
		for _, ev := range evs {
			if string(ev.Data) != "" && ev.RequestID == a.RequestID && containsID(ev, a.ID) {
				out = append(out, a)
			}
		}
	}
	if len(out) != len(evs) {
		t.Fatalf("%d alert.raised records but %d alert rows match them", len(evs), len(out))
	}
	return out
}

func containsID(ev lapse.AuditEvent, id int64) bool {
	return string(ev.Data) != "" && (len(ev.Data) > 0) && jsonHas(ev.Data, fmt.Sprintf(`"id":%d,`, id))
}

func jsonHas(b []byte, s string) bool {
	for i := 0; i+len(s) <= len(b); i++ {
		if string(b[i:i+len(s)]) == s {
			return true
		}
	}
	return false
}

func rules(name string, r monitor.Rule) monitor.Rules {
	rs := monitor.DefaultRules()
	for k, v := range rs {
		v.Enabled = false
		rs[k] = v
	}
	rs[name] = r
	return rs
}

var day = time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)

// nineToFive is a history of requests at 09:00 and 14:00 UTC from Germany
// on laptop-1.
func nineToFive(n int) []past {
	var ps []past
	for i := range n {
		ps = append(ps, past{at: day.Add(-time.Duration(i+1)*24*time.Hour + time.Duration(9+5*(i%2))*time.Hour), ip: "192.0.2.10", device: "laptop-1"})
	}
	return ps
}

func TestRequestRules(t *testing.T) {
	t.Parallel()
	low := monitor.Rule{Enabled: true, Severity: lapse.SeverityLow}
	burst := monitor.Rule{Enabled: true, Severity: lapse.SeverityMedium, Count: 3, Window: 10 * time.Minute}
	at := func(h, m int) time.Time { return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }
	tests := []struct {
		name    string
		rule    string
		r       monitor.Rule
		history []past
		now     past
		want    int
	}{
		{"unusual hour", monitor.RuleUnusualHour, low, nineToFive(6), past{at: at(3, 0), ip: "192.0.2.10"}, 1},
		{"usual hour", monitor.RuleUnusualHour, low, nineToFive(6), past{at: at(9, 30), ip: "192.0.2.10"}, 0},
		{"hours unknown below five requests", monitor.RuleUnusualHour, low, nineToFive(4), past{at: at(3, 0)}, 0},
		{"unusual hour, rule off", monitor.RuleUnusualHour, monitor.Rule{Severity: lapse.SeverityLow}, nineToFive(6), past{at: at(3, 0)}, 0},
		{"new country", monitor.RuleNewCountry, low, nineToFive(6), past{at: at(9, 0), ip: "198.51.100.7"}, 1},
		{"known country", monitor.RuleNewCountry, low, nineToFive(6), past{at: at(9, 0), ip: "192.0.2.99"}, 0},
		{"country unknown", monitor.RuleNewCountry, low, nineToFive(6), past{at: at(9, 0), ip: "10.0.0.1"}, 0},
		{"new device", monitor.RuleNewDevice, low, nineToFive(6), past{at: at(9, 0), device: "laptop-2"}, 1},
		{"known device", monitor.RuleNewDevice, low, nineToFive(6), past{at: at(9, 0), device: "laptop-1"}, 0},
		{"no device", monitor.RuleNewDevice, low, nineToFive(6), past{at: at(9, 0)}, 0},
		{"burst", monitor.RuleRequestBurst, burst, []past{{at: at(9, 0)}, {at: at(9, 5)}}, past{at: at(9, 9)}, 1},
		{"no burst: one outside the window", monitor.RuleRequestBurst, burst, []past{{at: at(8, 58)}, {at: at(9, 5)}}, past{at: at(9, 9)}, 0},
		{"no burst: below the count", monitor.RuleRequestBurst, burst, []past{{at: at(9, 5)}}, past{at: at(9, 9)}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := lapsetest.OpenStore(t)
			seed(t, st, "alice", tc.history)
			w := newWatcher(t, st, rules(tc.rule, tc.r))
			got := submit(t, w, st, "now", "alice", tc.now)
			if len(got) != tc.want {
				t.Fatalf("raised %d alerts, want %d: %+v", len(got), tc.want, got)
			}
			for _, a := range got {
				if a.Rule != tc.rule || a.Severity != tc.r.Severity || a.RequestID != "now" || a.User != "alice" || a.State != lapse.AlertOpen || !a.RaisedAt.Equal(tc.now.at) {
					t.Errorf("alert = %+v", a)
				}
			}
			verifyChain(t, st)
		})
	}
}

func TestBurstRaisedOnce(t *testing.T) {
	st := lapsetest.OpenStore(t)
	w := newWatcher(t, st, rules(monitor.RuleRequestBurst, monitor.Rule{Enabled: true, Severity: lapse.SeverityMedium, Count: 2, Window: time.Hour}))
	n := 0
	for i := range 5 {
		n += len(submit(t, w, st, fmt.Sprintf("r%d", i), "alice", past{at: day.Add(time.Duration(i) * time.Minute)}))
	}
	if n != 1 {
		t.Fatalf("raised %d alerts for one burst, want 1 while the first is open", n)
	}
	// Acknowledged, a burst that goes on raises a new alert.
	if err := w.Ack(t.Context(), 1, "carol"); err != nil {
		t.Fatal(err)
	}
	if got := submit(t, w, st, "r9", "alice", past{at: day.Add(9 * time.Minute)}); len(got) != 1 {
		t.Fatalf("after acknowledgement raised %d, want 1", len(got))
	}
}

func TestDenialBurst(t *testing.T) {
	st := lapsetest.OpenStore(t)
	w := newWatcher(t, st, rules(monitor.RuleDenialBurst, monitor.Rule{Enabled: true, Severity: lapse.SeverityHigh, Count: 3, Window: 10 * time.Minute}))
	refuse := func(at time.Time, typ string) []lapse.Alert {
		before, _ := st.LastAuditSeq(t.Context())
		ev := lapse.NewAuditEvent(typ, "alice", "", lapse.Request{User: "alice", Resource: "orders-db", Role: "admin"}, nil, at)
		if err := w.Wrap(st).Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error { return tx.AppendAudit(ctx, ev) }); err != nil {
			t.Fatal(err)
		}
		return raisedAfter(t, st, before)
	}
	if got := refuse(day, lapse.EvRefused); len(got) != 0 {
		t.Fatal("one refusal raised an alert")
	}
	if got := refuse(day.Add(time.Minute), lapse.EvDenied); len(got) != 0 {
		t.Fatal("two refusals raised an alert")
	}
	got := refuse(day.Add(2*time.Minute), lapse.EvRefused)
	if len(got) != 1 || got[0].Rule != monitor.RuleDenialBurst || got[0].Details["count"] != "3" {
		t.Fatalf("third refusal within the window: %+v", got)
	}
}

// grant stores an active grant of alice on orders-db read from start for
// an hour.
func grant(t *testing.T, st lapse.Store, id string, from time.Time) lapse.Request {
	return activeRequest(t, st, id, "alice", "orders-db", "ref-"+id, from)
}

func TestIngestTiesActivityToGrant(t *testing.T) {
	st := lapsetest.OpenStore(t)
	w := newWatcher(t, st, monitor.DefaultRules())
	g := grant(t, st, "g1", start.Add(-30*time.Minute))
	res, err := w.Ingest(t.Context(), "bastion", monitor.ActivityReport{User: "alice", Resource: "orders-db", Role: "read",
		Kind: "login", At: start.Add(-10 * time.Minute).Format(time.RFC3339), SourceIP: "192.0.2.1", Details: map[string]string{"host": "db-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.RequestID != g.ID || res.Outside {
		t.Fatalf("result %+v, want tied to %s", res, g.ID)
	}
	evs, acts := activityEvents(t, st, g.ID)
	if len(evs) != 1 || evs[0].Actor != "bastion" || acts[0].Kind != "login" || acts[0].Details["client_addr"] != "192.0.2.1" ||
		acts[0].Details["host"] != "db-1" || acts[0].Details["source"] != "bastion" || evs[0].Seq != res.Seq {
		t.Fatalf("activity records %+v %+v", evs, acts)
	}
	// Before the grant's window: an anomaly, and an alert with it.
	res, err = w.Ingest(t.Context(), "bastion", monitor.ActivityReport{User: "alice", Resource: "orders-db", Role: "read",
		Kind: "login", At: start.Add(-time.Hour).Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Outside || res.RequestID != "" {
		t.Fatalf("activity before the window: %+v", res)
	}
	out, err := st.ListAudit(t.Context(), lapse.AuditFilter{Type: lapse.EvActivityOutside})
	if err != nil || len(out) != 1 {
		t.Fatalf("outside records %v %v", out, err)
	}
	alerts := raisedAfter(t, st, out[0].Seq-1)
	if len(alerts) != 1 || alerts[0].Rule != monitor.RuleOutsideGrant || alerts[0].Severity != lapse.SeverityHigh {
		t.Fatalf("alerts %+v", alerts)
	}
	// Naming the request: after its window is outside too.
	old := grant(t, st, "g0", start.Add(-3*time.Hour))
	res, err = w.Ingest(t.Context(), "bastion", monitor.ActivityReport{RequestID: old.ID, Kind: "query", At: start.Add(-90 * time.Minute).Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Outside || res.RequestID != old.ID {
		t.Fatalf("activity after the window: %+v", res)
	}
	verifyChain(t, st)
}

func TestIngestBadInput(t *testing.T) {
	st := lapsetest.OpenStore(t)
	w := newWatcher(t, st, monitor.DefaultRules())
	grant(t, st, "g1", start.Add(-time.Minute))
	ok := monitor.ActivityReport{User: "alice", Resource: "orders-db", Role: "read", Kind: "login"}
	long := string(make([]byte, 300))
	for name, in := range map[string]monitor.ActivityReport{
		"no grant named":        {User: "alice", Kind: "login"},
		"no kind":               {User: "alice", Resource: "orders-db", Role: "read"},
		"bad kind":              {User: "alice", Resource: "orders-db", Role: "read", Kind: "Log In"},
		"bad time":              {User: "alice", Resource: "orders-db", Role: "read", Kind: "login", At: "yesterday"},
		"future time":           {User: "alice", Resource: "orders-db", Role: "read", Kind: "login", At: start.Add(time.Hour).Format(time.RFC3339)},
		"ancient time":          {User: "alice", Resource: "orders-db", Role: "read", Kind: "login", At: start.AddDate(-1, 0, 0).Format(time.RFC3339)},
		"bad ip":                {User: "alice", Resource: "orders-db", Role: "read", Kind: "login", SourceIP: "300.1.1.1"},
		"unknown request":       {RequestID: "nope", Kind: "login"},
		"request of another":    {RequestID: "g1", User: "bob", Kind: "login"},
		"long user":             {User: long, Resource: "orders-db", Role: "read", Kind: "login"},
		"reserved detail":       {User: "alice", Resource: "orders-db", Role: "read", Kind: "login", Details: map[string]string{"client_addr": "1.2.3.4"}},
		"empty detail key":      {User: "alice", Resource: "orders-db", Role: "read", Kind: "login", Details: map[string]string{"": "x"}},
		"detail value too long": {User: "alice", Resource: "orders-db", Role: "read", Kind: "login", Details: map[string]string{"q": string(make([]byte, 2000))}},
	} {
		t.Run(name, func(t *testing.T) {
			before, _ := st.LastAuditSeq(t.Context())
			_, err := w.Ingest(t.Context(), "bastion", in)
			if !errors.Is(err, lapse.ErrInvalid) {
				t.Fatalf("err = %v, want invalid", err)
			}
			if after, _ := st.LastAuditSeq(t.Context()); after != before {
				t.Errorf("bad input appended audit records")
			}
		})
	}
	if _, err := w.Ingest(t.Context(), "bastion", ok); err != nil {
		t.Fatalf("good input: %v", err)
	}
}

// revoker records the revocations a watcher asks for.
type revoker struct {
	mu  sync.Mutex
	ids []string
	why []string
}

func (r *revoker) revoke(_ context.Context, id, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ids = append(r.ids, id)
	r.why = append(r.why, reason)
	return nil
}

func TestTwoCountriesRevokes(t *testing.T) {
	st := lapsetest.OpenStore(t)
	w := newWatcher(t, st, rules(monitor.RuleTwoCountries, monitor.Rule{Enabled: true, Severity: lapse.SeverityCritical, Revoke: true}))
	rv := &revoker{}
	w.Revoke = rv.revoke
	g := grant(t, st, "g1", start.Add(-30*time.Minute))
	report := func(ip string, minute int) monitor.IngestResult {
		res, err := w.Ingest(t.Context(), "bastion", monitor.ActivityReport{RequestID: g.ID, Kind: "login",
			At: start.Add(time.Duration(minute-20) * time.Minute).Format(time.RFC3339), SourceIP: ip})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	report("192.0.2.1", 0)
	report("192.0.2.2", 1)
	if n, _ := st.CountOpenAlerts(t.Context(), "alice"); n != 0 {
		t.Fatalf("one country raised %d alerts", n)
	}
	res := report("198.51.100.3", 2)
	alerts := raisedAfter(t, st, res.Seq)
	if len(alerts) != 1 || alerts[0].Rule != monitor.RuleTwoCountries || !alerts[0].Revoke ||
		alerts[0].Details["country"] != "FR" || alerts[0].Details["earlier_country"] != "DE" {
		t.Fatalf("alerts %+v", alerts)
	}
	report("198.51.100.4", 3) // the same pair again: no second alert
	if n, _ := st.CountOpenAlerts(t.Context(), "alice"); n != 1 {
		t.Fatalf("open alerts = %d, want 1", n)
	}
	// The committed alert asks for the grant's revocation.
	evs, _ := st.ListAudit(t.Context(), lapse.AuditFilter{Type: lapse.EvAlertRaised})
	w.Observe(evs)
	w.RevokePending(t.Context())
	if len(rv.ids) != 1 || rv.ids[0] != g.ID || rv.why[0] != "anomaly rule two_countries" {
		t.Fatalf("revocations %v %v", rv.ids, rv.why)
	}
	w.RevokePending(t.Context())
	if len(rv.ids) != 1 {
		t.Fatalf("revoked twice: %v", rv.ids)
	}
}

// TestRevokeWaitsForActivation: a revoking rule that fires on a request
// still pending revokes it once it is active, also after a restart.
func TestRevokeWaitsForActivation(t *testing.T) {
	st := lapsetest.OpenStore(t)
	seed(t, st, "alice", nineToFive(6))
	w := newWatcher(t, st, rules(monitor.RuleNewCountry, monitor.Rule{Enabled: true, Severity: lapse.SeverityHigh, Revoke: true}))
	alerts := submit(t, w, st, "r1", "alice", past{at: day.Add(9 * time.Hour), ip: "203.0.113.5"})
	if len(alerts) != 1 || !alerts[0].Revoke {
		t.Fatalf("alerts %+v", alerts)
	}
	// A new watcher (a restart) learns what to revoke from the open alerts.
	w2 := newWatcher(t, st, w.Rules)
	rv := &revoker{}
	w2.Revoke = rv.revoke
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w2.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	rv.mu.Lock()
	n := len(rv.ids)
	rv.mu.Unlock()
	if n != 0 {
		t.Fatal("revoked a pending request")
	}
	r, err := st.GetRequest(t.Context(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	if r, err = r.Approve("bob", "", day.Add(9*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r, err = r.Claim("local", day.Add(9*time.Hour), time.Minute); err == nil {
		r, err = r.Activate("ref", day.Add(9*time.Hour))
	}
	if err != nil {
		t.Fatal(err)
	}
	updateRequest(t, st, r)
	w2.Observe(nil)
	w2.RevokePending(t.Context())
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if len(rv.ids) != 1 || rv.ids[0] != "r1" {
		t.Fatalf("revocations %v", rv.ids)
	}
}

func TestSSHDLogin(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
		want monitor.ActivityReport
	}{
		{`Nov 29 01:02:03 web-3 sshd[4242]: Accepted publickey for deploy from 192.0.2.7 port 50122 ssh2: ED25519-CERT SHA256:AAAA ID lapse:alice:k3x9abcd2345 (serial 42) CA ED25519 SHA256:BBBB`, true,
			monitor.ActivityReport{User: "alice", RequestID: "k3x9abcd2345", Kind: "login", SourceIP: "192.0.2.7", ID: "sshd 192.0.2.7 port 50122 serial 42",
				Details: map[string]string{"account": "deploy", "serial": "42", "host": "web-3"}}},
		{`sshd[1]: Accepted publickey for deploy from ::1 port 1 ssh2: RSA-CERT SHA256:A ID lapse:bob:g1 (serial 7) CA RSA SHA256:B`, true,
			monitor.ActivityReport{User: "bob", RequestID: "g1", Kind: "login", SourceIP: "::1", ID: "sshd ::1 port 1 serial 7",
				Details: map[string]string{"account": "deploy", "serial": "7", "host": "web-3"}}},
		{`sshd[1]: Accepted publickey for deploy from 192.0.2.7 port 1 ssh2: ED25519 SHA256:AAAA`, false, monitor.ActivityReport{}},
		{`sshd[1]: Accepted publickey for deploy from 192.0.2.7 port 1 ssh2: ED25519-CERT SHA256:A ID someone-else (serial 1) CA ED25519 SHA256:B`, false, monitor.ActivityReport{}},
		{`sshd[1]: Failed publickey for deploy from 192.0.2.7 port 1 ssh2: ED25519-CERT SHA256:A ID lapse:alice:g1 (serial 1) CA ED25519 SHA256:B`, false, monitor.ActivityReport{}},
	} {
		got, ok := monitor.SSHDLogin(tc.line, "web-3")
		if ok != tc.ok || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("SSHDLogin(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}
