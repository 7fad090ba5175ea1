package identity_test

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/broker"
	"github.com/lapse-access/lapse/client"
	"github.com/lapse-access/lapse/connector/token"
	"github.com/lapse-access/lapse/expiry"
	"github.com/lapse-access/lapse/httpapi"
	"github.com/lapse-access/lapse/identity"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/lapsetest/oidctest"
	"github.com/lapse-access/lapse/policy"
	"github.com/lapse-access/lapse/seal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stepUpPolicy demands a second factor from the last 5 minutes for
// production.
const stepUpPolicy = `
@id("prod-fresh-mfa")
@reason("production needs a second factor from the last 5 minutes")
@step_up("5m")
forbid (principal, action in [Action::"Request", Action::"Extend"], resource is Role)
when { resource.environment == "prod" }
unless { context.mfa has present && context.mfa.present && context.mfa has age_seconds && context.mfa.age_seconds <= 300 };
`

// local users and their groups; their tokens are "tok-NAME".
var localUsers = map[string][]string{
	"alice":  {"eng"},
	"bob":    {"leads"},
	"audrey": {"audit"},
	"carol":  {"security"},
}

type stack struct {
	url    string
	op     *oidctest.Provider
	store  lapse.Store
	ids    *identity.Service
	broker *broker.Broker
}

type stackOptions struct {
	// issuer overrides the issuer Lapse is configured with.
	issuer string
}

func newStack(t *testing.T, opts ...stackOptions) *stack {
	t.Helper()
	var o stackOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	prov := oidctest.Start(t)
	prov.AddUser(oidctest.User{ID: "u-alice", Email: "alice@example.com", Groups: []string{"eng"}, AMR: []string{"pwd", "otp"}})
	prov.AddUser(oidctest.User{ID: "u-bob", Email: "bob@example.com", Groups: []string{"leads"}, AMR: []string{"pwd"}})

	st := lapsetest.OpenStore(t)
	key, err := token.LoadOrCreateKey(filepath.Join(t.TempDir(), "token.key"))
	if err != nil {
		t.Fatal(err)
	}
	tok := token.New(key, "lapse-test")
	box, _ := seal.New(make([]byte, 32))
	catalog := &lapse.Catalog{Resources: []lapse.Resource{
		{Name: "app", Connector: "tokens", Roles: []lapse.Role{{Name: "read", MaxDuration: 4 * time.Hour, Requesters: []string{"eng"}}}},
		{Name: "prod-db", Connector: "tokens", Environment: "prod", Roles: []lapse.Role{
			{Name: "read", MaxDuration: time.Hour, Requesters: []string{"eng"}},
			{Name: "admin", MaxDuration: time.Hour, Approvals: 1, Approvers: []string{"leads"}, Requesters: []string{"eng"}},
		}},
	}}
	builtin, err := policy.Builtin(catalog)
	if err != nil {
		t.Fatal(err)
	}
	custom, err := policy.Parse(map[string][]byte{"stepup.cedar": []byte(stepUpPolicy)})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := policy.New(catalog, builtin, custom)
	if err != nil {
		t.Fatal(err)
	}
	target := func(string, string) (lapse.Connector, any, error) { return tok, nil, nil }
	sched := &expiry.Scheduler{Store: st, Target: target, Sealer: box}
	b := &broker.Broker{Store: st, Catalog: catalog, Decider: engine, Executor: sched, Target: target, Sealer: box}

	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	issuer := prov.Issuer
	if o.issuer != "" {
		issuer = o.issuer
	}
	rp, err := identity.NewOIDC(identity.OIDCConfig{Issuer: issuer, ClientID: "lapse", ClientSecret: "lapse-secret",
		RedirectURL: base + "/auth/callback"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	prov.AddClient("lapse", "lapse-secret", base+"/auth/callback")
	ids := &identity.Service{Store: st, OIDC: rp, AdminGroups: []string{"security"}, AuditorGroups: []string{"audit"},
		SessionTTL: time.Hour, RefreshTTL: 24 * time.Hour, Logger: discard()}
	for name, groups := range localUsers {
		ids.Local = append(ids.Local, identity.LocalUser{Name: name, Groups: groups, TokenSHA256: sha256.Sum256([]byte("tok-" + name))})
	}
	if err := ids.Init(); err != nil {
		t.Fatal(err)
	}
	b.Directory = ids.Directory
	ids.GroupsChanged = func(ctx context.Context, user string) {
		if _, err := b.Reevaluate(ctx, func(r lapse.Request) bool { return r.User == user }); err != nil {
			t.Errorf("re-evaluate: %v", err)
		}
	}
	integrations := httpapi.NewStaticTokens(map[[32]byte]lapse.Principal{sha256.Sum256([]byte("tok-mdm")): {Name: "mdm"}})
	srv.Config.Handler = (&httpapi.Server{Broker: b, Auth: ids, Identity: ids, Integrations: integrations, Logger: discard()}).Handler()
	srv.Start()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = sched.Run(ctx) }()
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
	})
	return &stack{url: base, op: prov, store: st, ids: ids, broker: b}
}

// browser is an HTTP client with a cookie jar that stops following
// redirects once Lapse's callback has answered, so that the callback's
// answer can be inspected.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if strings.HasSuffix(via[len(via)-1].URL.Path, "/auth/callback") {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

// signIn drives a sign-in from Lapse's start URL through the provider's
// login form as user, and returns the answer of Lapse's callback.
func (s *stack) signIn(t *testing.T, c *http.Client, start, user string) *http.Response {
	t.Helper()
	form := s.openLogin(t, c, start)
	return s.submitLogin(t, c, form, user)
}

// openLogin follows start to the provider's login form and returns its
// URL.
func (s *stack) openLogin(t *testing.T, c *http.Client, start string) *url.URL {
	t.Helper()
	resp, err := c.Get(s.url + start)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Request.URL.String(), s.op.Issuer+"/login") {
		t.Fatalf("GET %s ended at %s with %d: %s", start, resp.Request.URL, resp.StatusCode, body)
	}
	return resp.Request.URL
}

func (s *stack) submitLogin(t *testing.T, c *http.Client, form *url.URL, user string) *http.Response {
	t.Helper()
	resp, err := c.PostForm(s.op.Issuer+"/login", url.Values{"id": {form.Query().Get("authRequestID")}, "username": {user}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// sessionCookie returns the session cookie resp sets, or fails.
func sessionCookie(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == identity.SessionCookie {
			return c
		}
	}
	t.Fatalf("no %s cookie in %d answer: %s", identity.SessionCookie, resp.StatusCode, readBody(t, resp))
	return nil
}

func (s *stack) client(token string) *client.Client { return client.New(s.url, token) }

func (s *stack) audit(t *testing.T, typ string) []lapse.AuditEvent {
	t.Helper()
	evs, err := s.store.ListAudit(context.Background(), lapse.AuditFilter{Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}
