package webui_test

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/broker"
	"github.com/lapse-access/lapse/connector/token"
	"github.com/lapse-access/lapse/httpapi"
	"github.com/lapse-access/lapse/lapsetest/brokertest"
	"github.com/lapse-access/lapse/webui"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var users = map[string][]string{
	"alice":  {"eng"},
	"dave":   {"eng"},
	"bob":    {"leads"},
	"carol":  {"security"},
	"audrey": {"audit"},
}

// stack is the UI on a real loopback listener, in front of a broker with
// an embedded store and the token connector.
type stack struct {
	url    string
	store  lapse.Store
	broker *broker.Broker
	tok    *token.Connector

	// handler is the UI itself, for benchmarks.
	handler http.Handler

	mu      sync.Mutex
	logouts []string
}

// loggedOut returns the tokens the logout hook saw.
func (s *stack) loggedOut() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.logouts)
}

type option func(*webui.Config)

func newStack(t testing.TB, opts ...option) *stack {
	t.Helper()
	catalog := &lapse.Catalog{Resources: []lapse.Resource{
		{Name: "app", Connector: "tokens", Environment: "staging", Roles: []lapse.Role{{Name: "read", MaxDuration: 4 * time.Hour, Requesters: []string{"eng"}}}},
		{Name: "db", Connector: "tokens", Environment: "prod", Roles: []lapse.Role{
			{Name: "admin", MaxDuration: time.Hour, Approvals: 1, Approvers: []string{"leads"}, Requesters: []string{"eng"}},
		}},
	}}
	bs := brokertest.New(t, catalog)
	principals := map[[32]byte]lapse.Principal{}
	for name, groups := range users {
		principals[sha256.Sum256([]byte("tok-"+name))] = lapse.Principal{Name: name, Groups: groups, Admin: name == "carol", Auditor: name == "audrey"}
	}
	s := &stack{store: bs.Store, broker: bs.Broker, tok: bs.Tokens}
	cfg := webui.Config{Broker: bs.Broker, Auth: httpapi.NewStaticTokens(principals), Loopback: true,
		Logout: func(_ context.Context, tok string) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.logouts = append(s.logouts, tok)
			return nil
		}}
	for _, o := range opts {
		o(&cfg)
	}
	ui, err := webui.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ui)
	t.Cleanup(srv.Close)
	s.url, s.handler = srv.URL, ui
	return s
}

// response is a page as a test reads it.
type response struct {
	status int
	header http.Header
	body   string
}

func (r response) location() string { return r.header.Get("Location") }

// client sends requests with no redirects followed and no cookie jar:
// every cookie is the test's choice.
var client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func do(t testing.TB, req *http.Request) response {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

// get loads path as user ("" for nobody).
func (s *stack) get(t testing.TB, user, path string) response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.url+path, nil)
	if user != "" {
		req.AddCookie(&http.Cookie{Name: webui.CookieName, Value: "tok-" + user})
	}
	return do(t, req)
}

// post sends a form as a browser on this origin does, with the CSRF token
// of user's session; headers override or (with an empty value) remove
// headers.
func (s *stack) post(t testing.TB, user, path string, form url.Values, headers map[string]string) response {
	t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok && user != "" {
		form.Set("csrf", s.csrf(t, user))
	}
	req, _ := http.NewRequest(http.MethodPost, s.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.url)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if user != "" {
		req.AddCookie(&http.Cookie{Name: webui.CookieName, Value: "tok-" + user})
	}
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	return do(t, req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token from a page of user's.
func (s *stack) csrf(t testing.TB, user string) string {
	t.Helper()
	page := s.get(t, user, "/requests/new")
	m := csrfRE.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no CSRF token on the page of %s (status %d)", user, page.status)
	}
	return m[1]
}

// state is what a refused form must leave alone: every request and every
// audit record but the records of refusals.
type state struct {
	requests []lapse.Request
	events   []string
}

func (s *stack) state(t testing.TB) state {
	t.Helper()
	rs, evs := brokertest.Contents(t, s.store)
	var kept []string
	for _, e := range evs {
		if !strings.HasSuffix(e.Type, "_refused") && e.Type != lapse.EvRefused {
			kept = append(kept, e.Hash)
		}
	}
	return state{rs, kept}
}

func (s *stack) unchanged(t testing.TB, before state) {
	t.Helper()
	after := s.state(t)
	if !slices.Equal(before.events, after.events) {
		t.Errorf("audit log changed: %d records before, %d after", len(before.events), len(after.events))
	}
	if len(before.requests) != len(after.requests) {
		t.Fatalf("%d requests before, %d after", len(before.requests), len(after.requests))
	}
	for i := range before.requests {
		if b, a := before.requests[i], after.requests[i]; b.ID != a.ID || b.Version != a.Version || b.State != a.State {
			t.Errorf("request %s changed: %s v%d -> %s v%d", b.ID, b.State, b.Version, a.State, a.Version)
		}
	}
}

// submit asks for access as user through the broker, for setting up.
func (s *stack) submit(t testing.TB, user, resource, role string) lapse.Request {
	t.Helper()
	res, err := s.broker.Submit(t.Context(), lapse.Principal{Name: user, Groups: users[user]},
		broker.SubmitInput{Resource: resource, Role: role, Duration: 30 * time.Minute, Reason: "setup"})
	if err != nil {
		t.Fatal(err)
	}
	return res.Request
}

func (s *stack) request(t testing.TB, id string) lapse.Request {
	t.Helper()
	r, err := s.store.GetRequest(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantPage(t testing.TB, r response, status int, fragments ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body:\n%s", r.status, status, r.body)
	}
	for _, f := range fragments {
		if !strings.Contains(r.body, f) {
			t.Fatalf("page lacks %q; body:\n%s", f, r.body)
		}
	}
}

func wantRedirect(t testing.TB, r response, prefix string) {
	t.Helper()
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location(), prefix) {
		t.Fatalf("got %d to %q, want 303 to %s…; body:\n%s", r.status, r.location(), prefix, r.body)
	}
}
