// Package brokertest wires a [broker.Broker] for tests of the packages that
// serve it: an embedded store, the built-in token connector for every
// resource, the catalog's built-in policies, and a running expiry
// scheduler.
package brokertest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/broker"
	"github.com/lapse-access/lapse/connector/token"
	"github.com/lapse-access/lapse/expiry"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/seal"
	"github.com/lapse-access/lapse/sqlstore"
)

// Stack is a broker and what it runs on.
type Stack struct {
	Broker *broker.Broker
	Store  *sqlstore.Store
	// Tokens is the connector of every resource; its Verify checks the
	// credentials a grant handed out.
	Tokens *token.Connector
}

// New wires a broker over catalog for t. The scheduler runs until t ends;
// cleanups registered after New run before it stops.
func New(t testing.TB, catalog *lapse.Catalog) *Stack {
	t.Helper()
	st := lapsetest.OpenStore(t)
	key, err := token.LoadOrCreateKey(filepath.Join(t.TempDir(), "token.key"))
	if err != nil {
		t.Fatal(err)
	}
	tok := token.New(key, "lapse-test")
	box, err := seal.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	target := func(string, string) (lapse.Connector, any, error) { return tok, nil, nil }
	sched := &expiry.Scheduler{Store: st, Target: target, Sealer: box}
	b := &broker.Broker{Store: st, Catalog: catalog, Decider: lapsetest.Policies{Catalog: catalog}, Executor: sched, Target: target, Sealer: box}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sched.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return &Stack{Broker: b, Store: st, Tokens: tok}
}

// Contents returns every request and every audit record in st, for tests
// that show a refused action changed nothing.
func Contents(t testing.TB, st lapse.Reader) ([]lapse.Request, []lapse.AuditEvent) {
	t.Helper()
	rs, err := st.ListRequests(context.Background(), lapse.RequestFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := st.ListAudit(context.Background(), lapse.AuditFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return rs, evs
}
