package monitor_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/monitor"
)

// stores are the stores the rules must judge alike: SQLite writes audit
// records when they are appended, PostgreSQL when the transaction commits.
var stores = []struct {
	name string
	open func(t *testing.T) lapse.Store
}{
	{"sqlite", func(t *testing.T) lapse.Store { return openStore(t) }},
	{"postgres", func(t *testing.T) lapse.Store { return lapsetest.OpenPostgresStore(t) }},
}

// requestTx creates, in one transaction through the watched store, one
// request of user for each entry of groups, appending the request.created
// records of each group with one AppendAudit call. The requests are made a
// second apart from at, numbered from n.
func requestTx(t *testing.T, w *monitor.Watcher, st lapse.Store, user string, n int, at time.Time, groups ...int) {
	t.Helper()
	err := w.Wrap(st).Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error {
		for _, size := range groups {
			var evs []lapse.AuditEvent
			for range size {
				when := at.Add(time.Duration(n) * time.Second)
				r, err := lapse.NewRequest(lapse.Request{ID: fmt.Sprintf("%s-%d", user, n), User: user, Resource: "orders-db", Role: "read",
					Reason: "INC-3", Duration: time.Hour}, 1, time.Hour, when)
				if err != nil {
					return err
				}
				if err := tx.CreateRequest(ctx, &r); err != nil {
					return err
				}
				evs = append(evs, lapse.NewAuditEvent(lapse.EvRequested, user, "", r, nil, when))
				n++
			}
			if err := tx.AppendAudit(ctx, evs...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// alertsOf returns the alerts about user, checking that each has its
// alert.raised record.
func alertsOf(t *testing.T, st lapse.Store, user string) []lapse.Alert {
	t.Helper()
	as, err := st.ListAlerts(t.Context(), lapse.AlertFilter{User: user})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := st.ListAudit(t.Context(), lapse.AuditFilter{User: user, Type: lapse.EvAlertRaised})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != len(as) {
		t.Fatalf("%d alerts about %s but %d alert.raised records", len(as), user, len(evs))
	}
	return as
}

// TestBurstCountsEveryEventOnce: a request burst spread over several
// appends of one transaction, over several transactions, or both, counts
// each request exactly once on both stores: one request short of the count
// raises nothing, the count raises one alert.
func TestBurstCountsEveryEventOnce(t *testing.T) {
	const count = 4
	rule := monitor.Rule{Enabled: true, Severity: lapse.SeverityMedium, Count: count, Window: time.Hour}
	// Each case is the transactions of one user, each a list of the sizes
	// of its appends.
	tests := []struct {
		name string
		txs  [][]int
		want int
	}{
		{"appends of one transaction, one short", [][]int{{1, 1, 1}}, 0},
		{"appends of one transaction", [][]int{{1, 1, 1, 1}}, 1},
		{"transactions, one short", [][]int{{1}, {1}, {1}}, 0},
		{"transactions", [][]int{{1}, {1}, {1}, {1}}, 1},
		{"committed and appends, one short", [][]int{{1}, {1, 1}}, 0},
		{"committed and appends", [][]int{{1}, {1, 2}}, 1},
		{"one append past the count", [][]int{{count + 2}}, 1},
		{"transactions past the count", [][]int{{2}, {1, 1}, {1, 2}}, 1},
	}
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			st := s.open(t)
			w := newWatcher(t, st, rules(monitor.RuleRequestBurst, rule))
			for i, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					user := "user" + strconv.Itoa(i)
					n := 0
					for _, groups := range tc.txs {
						requestTx(t, w, st, user, n, day, groups...)
						for _, g := range groups {
							n += g
						}
					}
					got := alertsOf(t, st, user)
					if len(got) != tc.want {
						t.Fatalf("raised %d alerts, want %d: %+v", len(got), tc.want, got)
					}
					if tc.want == 1 {
						// Raised by the count-th request, which counted itself and
						// the ones before it.
						if a := got[0]; a.Rule != monitor.RuleRequestBurst || a.Details["count"] != strconv.Itoa(count) ||
							a.RequestID != fmt.Sprintf("%s-%d", user, count-1) {
							t.Errorf("alert = %+v, want raised by request %d with count %d", a, count-1, count)
						}
					}
				})
			}
			verifyChain(t, st)
		})
	}
}

// TestTwoCountriesWithinOneTransaction: activity of one grant from two
// countries, appended in two calls of one transaction, raises one alert on
// both stores.
func TestTwoCountriesWithinOneTransaction(t *testing.T) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			st := s.open(t)
			w := newWatcher(t, st, rules(monitor.RuleTwoCountries, monitor.Rule{Enabled: true, Severity: lapse.SeverityCritical}))
			g := grant(t, st, "g1", start.Add(-30*time.Minute))
			activity := func(ip string, minute int) lapse.AuditEvent {
				at := start.Add(time.Duration(minute-20) * time.Minute)
				a := lapse.Activity{Key: "login " + ip, Kind: "login", At: at, Details: map[string]string{"client_addr": ip}}
				ev := lapse.NewAuditEvent(lapse.EvActivity, "bastion", "", g, a, at)
				ev.From, ev.To = "", ""
				return ev
			}
			err := w.Wrap(st).Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error {
				if err := tx.AppendAudit(ctx, activity("192.0.2.1", 0)); err != nil {
					return err
				}
				return tx.AppendAudit(ctx, activity("198.51.100.3", 1), activity("198.51.100.4", 2))
			})
			if err != nil {
				t.Fatal(err)
			}
			got := alertsOf(t, st, "alice")
			if len(got) != 1 || got[0].Rule != monitor.RuleTwoCountries || got[0].Details["country"] != "FR" || got[0].Details["earlier_country"] != "DE" {
				t.Fatalf("alerts %+v, want one two_countries alert, DE then FR", got)
			}
			verifyChain(t, st)
		})
	}
}

// logReadsStore hands out transactions that fail t when the audit log is
// read through them.
type logReadsStore struct {
	lapse.Store
	t *testing.T
}

func (s logReadsStore) Tx(ctx context.Context, fn func(ctx context.Context, tx lapse.Tx) error) error {
	return s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error { return fn(ctx, logReadsTx{Tx: tx, t: s.t}) })
}

type logReadsTx struct {
	lapse.Tx
	t *testing.T
}

var errLogRead = errors.New("audit log read in the transaction")

func (tx logReadsTx) LastAuditSeq(context.Context) (int64, error) {
	tx.t.Error("LastAuditSeq called in a watched transaction")
	return 0, errLogRead
}

func (tx logReadsTx) ListAudit(context.Context, lapse.AuditFilter) ([]lapse.AuditEvent, error) {
	tx.t.Error("ListAudit called in a watched transaction")
	return nil, errLogRead
}

func (tx logReadsTx) ScanAudit(context.Context, func(lapse.AuditEvent) error) error {
	tx.t.Error("ScanAudit called in a watched transaction")
	return errLogRead
}

// TestWatchedTxLeavesTheLogAlone: with every rule on, a watched
// transaction reads neither the head of the audit log nor the log itself
// through the transaction, and the rules still fire.
func TestWatchedTxLeavesTheLogAlone(t *testing.T) {
	st := openStore(t)
	rs := monitor.DefaultRules()
	for _, name := range []string{monitor.RuleRequestBurst, monitor.RuleDenialBurst} {
		r := rs[name]
		r.Count = 2
		rs[name] = r
	}
	w := newWatcher(t, st, rs)
	watched := logReadsStore{Store: st, t: t}
	g := grant(t, st, "g1", start.Add(-30*time.Minute))
	requestTx(t, w, watched, "bob", 0, day, 1, 1)
	refused := lapse.NewAuditEvent(lapse.EvRefused, "bob", "", lapse.Request{User: "bob", Resource: "orders-db", Role: "admin"}, nil, day)
	activity := func(ip string) lapse.AuditEvent {
		a := lapse.Activity{Key: "login " + ip, Kind: "login", At: start, Details: map[string]string{"client_addr": ip}}
		return lapse.NewAuditEvent(lapse.EvActivity, "bastion", "", g, a, start)
	}
	err := w.Wrap(watched).Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error {
		return tx.AppendAudit(ctx, refused, refused, activity("192.0.2.1"), activity("198.51.100.3"))
	})
	if err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]int{"bob": 2, "alice": 1} {
		if got := alertsOf(t, st, user); len(got) != want {
			t.Errorf("%d alerts about %s, want %d: %+v", len(got), user, want, got)
		}
	}
}

// TestWatchedTransactionsOutnumberPool runs more watched transactions at
// once than the PostgreSQL store's pool holds connections: each reads the
// log through the store while it holds a connection of its own, and none
// may wait for a connection that the others hold.
func TestWatchedTransactionsOutnumberPool(t *testing.T) {
	st := lapsetest.OpenPostgresStore(t) // 4 connections in each pool
	rule := monitor.Rule{Enabled: true, Severity: lapse.SeverityMedium, Count: 1000, Window: time.Hour}
	w := newWatcher(t, st, rules(monitor.RuleRequestBurst, rule))
	const txs = 16
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for i := range txs {
			wg.Go(func() { requestTx(t, w, st, "user"+strconv.Itoa(i), 0, day, 1, 1) })
		}
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("watched transactions still waiting for connections after a minute")
	}
	verifyChain(t, st)
}
