package main

import (
	"fmt"
	"io"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/config"
)

// demoSetup is the configuration of `lapse serve --demo` and the tokens of
// its users.
type demoSetup struct {
	config *config.Config
	tokens map[string]string
}

func newDemo() (*demoSetup, error) {
	d := &demoSetup{tokens: map[string]string{}}
	cfg := &config.Config{
		Server: config.Server{Listen: "127.0.0.1:8080", PendingTTL: 24 * time.Hour, Issuer: "lapse-demo",
			ActivityInterval: 15 * time.Second, ReconcileInterval: time.Minute},
		AdminGroups: []string{"security"},
		Connectors:  []config.Connector{{Name: "tokens", Type: "token"}},
		Resources: []lapse.Resource{
			{Name: "demo-app", Connector: "tokens", Environment: "staging", Roles: []lapse.Role{
				{Name: "read", MaxDuration: 8 * time.Hour, Approvals: 0, Requesters: []string{"engineering"}},
			}},
			{Name: "orders-db", Connector: "tokens", Environment: "prod", Tags: []string{"pci"}, Roles: []lapse.Role{
				{Name: "admin", MaxDuration: 2 * time.Hour, Approvals: 1, Approvers: []string{"leads"}, Requesters: []string{"engineering"}},
			}},
		},
	}
	for _, u := range []struct {
		name   string
		groups []string
	}{{"alice", []string{"engineering"}}, {"bob", []string{"leads"}}, {"carol", []string{"security"}}} {
		tok, sum := newToken(u.name)
		d.tokens[u.name] = tok
		cfg.Users = append(cfg.Users, config.User{Name: u.name, Groups: u.groups, TokenSHA256: sum})
	}
	d.config = cfg
	return d, nil
}

func (d *demoSetup) printIntro(w io.Writer, url string) {
	fmt.Fprintf(w, `
Lapse demo is running at %[1]s (data is temporary and gone when it stops).

Users and their tokens:
  alice (engineering, requester)   %[2]s
  bob   (leads, approver)          %[3]s
  carol (security, admin)          %[4]s

Resources (built-in token connector):
  demo-app   role read   up to 8h, approved automatically
  orders-db  role admin  up to 2h, needs one approval from leads (bob)

Web UI: open %[1]s/ in a browser
and sign in by pasting one of the tokens above: alice to ask for access,
then, in another browser or a private window, bob to approve; carol sees
and revokes every active grant.

Or, in another terminal, build the CLI and try it:
  go build -o lapse ./cmd/lapse
  export LAPSE_SERVER=%[1]s

  # alice asks for read on demo-app: approved at once, token handed over once
  LAPSE_TOKEN=%[2]s ./lapse request demo-app --role read --for 1h --reason "trying Lapse"
  LAPSE_TOKEN=%[2]s ./lapse ls --mine
  LAPSE_TOKEN=%[2]s ./lapse check --user alice --resource demo-app --role read

  # alice asks for admin on orders-db; bob approves; alice fetches the token
  LAPSE_TOKEN=%[2]s ./lapse request orders-db --role admin --for 30m --reason "INC-4411"
  LAPSE_TOKEN=%[3]s ./lapse ls --to-approve
  LAPSE_TOKEN=%[3]s ./lapse approve ID --comment "ok for INC-4411"
  LAPSE_TOKEN=%[2]s ./lapse credentials ID
  LAPSE_TOKEN=%[2]s ./lapse release ID

  # carol (admin) revokes anything and reads the audit log
  LAPSE_TOKEN=%[4]s ./lapse revoke ID --reason "done"
  LAPSE_TOKEN=%[4]s ./lapse audit
  LAPSE_TOKEN=%[4]s ./lapse audit verify

Stop the server with Ctrl-C.
`, url, d.tokens["alice"], d.tokens["bob"], d.tokens["carol"])
}
