package webhook_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector/webhook"
)

var secret = []byte("0123456789abcdef0123456789abcdef-test-secret")

// recorded is one call a test server received.
type recorded struct {
	path   string
	header http.Header
	body   []byte
}

// server is a receiver whose answer each test chooses.
type server struct {
	*httptest.Server
	mu    sync.Mutex
	calls []recorded
}

func newServer(t *testing.T, answer http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.calls = append(s.calls, recorded{path: r.URL.Path, header: r.Header.Clone(), body: b})
		s.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) recorded() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.calls...)
}

func answerJSON(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func newConnector(t *testing.T, base string, edit func(*webhook.Config)) *webhook.Connector {
	t.Helper()
	cfg := webhook.Config{
		Name:         "tickets",
		ProvisionURL: base + "/provision",
		RevokeURL:    base + "/revoke",
		Secret:       secret,
		Timeout:      5 * time.Second,
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := webhook.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

var expires = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func grant() lapse.Grant {
	return lapse.Grant{
		ID: "g-1", User: "alice", Resource: "billing", Role: "admin", ExpiresAt: expires,
		Reason: "INC-4411", Settings: webhook.RoleSettings{Params: map[string]string{"group": "billing-admins"}},
	}
}

// checkSignature verifies a call's signature as a receiver would.
func checkSignature(t *testing.T, rec recorded) {
	t.Helper()
	ts, sig, ok := strings.Cut(rec.header.Get(webhook.SignatureHeader), ",v1=")
	ts, ok2 := strings.CutPrefix(ts, "t=")
	if !ok || !ok2 {
		t.Fatalf("signature header %q is not t=...,v1=...", rec.header.Get(webhook.SignatureHeader))
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(unix, 0)).Abs() > time.Minute {
		t.Errorf("signature timestamp %q is not now", ts)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts + "."))
	mac.Write(rec.body)
	if want := hex.EncodeToString(mac.Sum(nil)); sig != want {
		t.Errorf("signature v1=%s, want %s", sig, want)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	ok := webhook.Config{Name: "x", ProvisionURL: "https://r.example/p", RevokeURL: "https://r.example/r", Secret: secret}
	tests := []struct {
		name    string
		edit    func(*webhook.Config)
		wantErr string
	}{
		{"no name", func(c *webhook.Config) { c.Name = "" }, "name is required"},
		{"short secret", func(c *webhook.Config) { c.Secret = []byte("short") }, "at least 32 bytes"},
		{"no provision URL", func(c *webhook.Config) { c.ProvisionURL = "" }, "provision_url is required"},
		{"no revoke URL", func(c *webhook.Config) { c.RevokeURL = "" }, "revoke_url is required"},
		{"ftp", func(c *webhook.Config) { c.RevokeURL = "ftp://r.example/r" }, "http or https"},
		{"relative", func(c *webhook.Config) { c.ProvisionURL = "/provision" }, "http or https"},
		{"no host", func(c *webhook.Config) { c.ExtendURL = "https:///x" }, "no host"},
		{"userinfo", func(c *webhook.Config) { c.ProvisionURL = "https://bob:hunter2@r.example/p" }, "user name or password"},
		{"fragment", func(c *webhook.Config) { c.ListURL = "https://r.example/l#x" }, "fragment"},
		{"unparsable", func(c *webhook.Config) { c.ProvisionURL = "https://r.example/%zz" }, "not a valid URL"},
		{"negative timeout", func(c *webhook.Config) { c.Timeout = -time.Second }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			_, err := webhook.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, lapse.ErrInvalid) {
				t.Fatalf("New: %v, want an invalid-input error containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password in the URL: %v", err)
			}
		})
	}
	if _, err := webhook.New(ok); err != nil {
		t.Errorf("New with a good config: %v", err)
	}
}

func TestProvisionSendsSignedCall(t *testing.T) {
	t.Parallel()
	s := newServer(t, answerJSON(200, `{"credentials":{"kind":"token","value":"tok-1","instructions":"use it"},"receipt":{"account":"alice-tmp"},"extra":1}`))
	c := newConnector(t, s.URL, nil)
	p, err := c.Provision(t.Context(), grant())
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	want := lapse.Provisioned{
		Ref:         "g-1",
		Credentials: &lapse.Credentials{Kind: "token", Value: "tok-1", Instructions: "use it"},
		Details:     map[string]string{"account": "alice-tmp"},
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("Provision (-want +got):\n%s", diff)
	}
	calls := s.recorded()
	if len(calls) != 1 {
		t.Fatalf("%d calls, want 1", len(calls))
	}
	rec := calls[0]
	if rec.path != "/provision" {
		t.Errorf("path %q, want /provision", rec.path)
	}
	if got := rec.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	if got := rec.header.Get(webhook.IdempotencyHeader); got != "g-1:provision" {
		t.Errorf("Idempotency-Key %q, want g-1:provision", got)
	}
	checkSignature(t, rec)
	var body map[string]any
	if err := json.Unmarshal(rec.body, &body); err != nil {
		t.Fatal(err)
	}
	if id, _ := body["call_id"].(string); len(id) != 32 {
		t.Errorf("call_id %q, want 32 hex digits", id)
	}
	delete(body, "call_id")
	wantBody := map[string]any{
		"event": "provision", "grant_id": "g-1", "user": "alice", "resource": "billing", "role": "admin",
		"expires_at": "2030-01-02T03:04:05Z", "reason": "INC-4411", "params": map[string]any{"group": "billing-admins"},
	}
	if diff := cmp.Diff(wantBody, body); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func TestEmptyAnswerAndNoParams(t *testing.T) {
	t.Parallel()
	s := newServer(t, answerJSON(204, ""))
	c := newConnector(t, s.URL, nil)
	g := grant()
	g.Settings = nil
	p, err := c.Provision(t.Context(), g)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if p.Credentials != nil || p.Details != nil || p.Ref != g.ID {
		t.Errorf("Provision = %+v, want only the Ref", p)
	}
	if body := string(s.recorded()[0].body); !strings.Contains(body, `"params":{}`) {
		t.Errorf("body %s: want params as an empty object", body)
	}
}

func TestExtend(t *testing.T) {
	t.Parallel()
	t.Run("to the provision URL", func(t *testing.T) {
		s := newServer(t, answerJSON(200, `{}`))
		c := newConnector(t, s.URL, nil)
		g := grant()
		g.ExpiresAt = expires.Add(time.Hour)
		creds, err := c.Extend(t.Context(), g)
		if err != nil || creds != nil {
			t.Fatalf("Extend = %v, %v; want no credentials, no error", creds, err)
		}
		rec := s.recorded()[0]
		if rec.path != "/provision" || !strings.Contains(string(rec.body), `"event":"extend"`) ||
			!strings.Contains(string(rec.body), `"expires_at":"2030-01-02T04:04:05Z"`) {
			t.Errorf("extend went to %s with %s", rec.path, rec.body)
		}
		if got, want := rec.header.Get(webhook.IdempotencyHeader), "g-1:extend:"+strconv.FormatInt(g.ExpiresAt.Unix(), 10); got != want {
			t.Errorf("Idempotency-Key %q, want %q", got, want)
		}
		checkSignature(t, rec)
	})
	t.Run("to its own URL with new credentials", func(t *testing.T) {
		s := newServer(t, answerJSON(200, `{"credentials":{"value":"tok-2"}}`))
		c := newConnector(t, s.URL, func(cfg *webhook.Config) { cfg.ExtendURL = s.URL + "/extend" })
		creds, err := c.Extend(t.Context(), grant())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&lapse.Credentials{Kind: "text", Value: "tok-2"}, creds); diff != "" {
			t.Errorf("credentials (-want +got):\n%s", diff)
		}
		if p := s.recorded()[0].path; p != "/extend" {
			t.Errorf("path %q, want /extend", p)
		}
	})
}

func TestRevokeAndVerifyGone(t *testing.T) {
	t.Parallel()
	at := time.Date(2029, 5, 6, 7, 8, 9, 0, time.UTC)
	t.Run("receipt from the receiver", func(t *testing.T) {
		s := newServer(t, answerJSON(200, `{"receipt":{"account":"deleted"}}`))
		c := newConnector(t, s.URL, nil)
		g := grant()
		if _, err := c.VerifyGone(t.Context(), g); err == nil {
			t.Error("VerifyGone before any revoke succeeded")
		}
		if err := c.Revoke(t.Context(), g); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		rec := s.recorded()[0]
		if rec.path != "/revoke" || rec.header.Get(webhook.IdempotencyHeader) != "g-1:revoke" {
			t.Errorf("revoke went to %s with key %q", rec.path, rec.header.Get(webhook.IdempotencyHeader))
		}
		checkSignature(t, rec)
		receipt, err := c.VerifyGone(t.Context(), g)
		if err != nil {
			t.Fatalf("VerifyGone: %v", err)
		}
		if diff := cmp.Diff(map[string]string{"account": "deleted"}, receipt); diff != "" {
			t.Errorf("receipt (-want +got):\n%s", diff)
		}
	})
	t.Run("no receipt", func(t *testing.T) {
		s := newServer(t, answerJSON(202, ``))
		c := newConnector(t, s.URL, func(cfg *webhook.Config) { cfg.Now = func() time.Time { return at } })
		g := grant()
		if err := c.Revoke(t.Context(), g); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		receipt, err := c.VerifyGone(t.Context(), g)
		if err != nil {
			t.Fatalf("VerifyGone: %v", err)
		}
		want := map[string]string{"receiver": "tickets", "status": "202", "confirmed_at": "2029-05-06T07:08:09Z"}
		if diff := cmp.Diff(want, receipt); diff != "" {
			t.Errorf("receipt (-want +got):\n%s", diff)
		}
	})
	t.Run("provision after revoke", func(t *testing.T) {
		s := newServer(t, answerJSON(200, ``))
		c := newConnector(t, s.URL, nil)
		g := grant()
		if err := c.Revoke(t.Context(), g); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Provision(t.Context(), g); err != nil {
			t.Fatal(err)
		}
		if _, err := c.VerifyGone(t.Context(), g); err == nil {
			t.Error("VerifyGone succeeded after a provision that followed the revoke")
		}
	})
	t.Run("revoke without expiry", func(t *testing.T) {
		s := newServer(t, answerJSON(200, ``))
		c := newConnector(t, s.URL, nil)
		g := grant()
		g.ExpiresAt = time.Time{}
		if err := c.Revoke(t.Context(), g); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		if _, err := c.Provision(t.Context(), g); err == nil || !lapse.IsUnrecoverable(err) {
			t.Errorf("Provision without expiry: %v, want an unrecoverable error", err)
		}
	})
}

func TestList(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	listed := `{"grant_ids":["g-1","g-2"]}`
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/list" {
			mu.Lock()
			defer mu.Unlock()
			answerJSON(200, listed)(w, r)
			return
		}
		answerJSON(200, ``)(w, r)
	})
	c := newConnector(t, s.URL, func(cfg *webhook.Config) { cfg.ListURL = s.URL + "/list" })
	got, err := c.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]lapse.Existing{{Ref: "g-1", GrantID: "g-1"}, {Ref: "g-2", GrantID: "g-2"}}, got); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	rec := s.recorded()[0]
	if !strings.HasPrefix(string(rec.body), `{"call_id":"`) || !strings.HasSuffix(string(rec.body), `","event":"list"}`) {
		t.Errorf("list body %s", rec.body)
	}
	checkSignature(t, rec)
	g := grant()
	if err := c.Revoke(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	if _, err := c.VerifyGone(t.Context(), g); err == nil || !strings.Contains(err.Error(), "still lists") {
		t.Errorf("VerifyGone while listed: %v", err)
	}
	mu.Lock()
	listed = `{"grant_ids":["g-2"]}`
	mu.Unlock()
	if err := c.Revoke(t.Context(), g); err != nil {
		t.Fatal(err)
	}
	if _, err := c.VerifyGone(t.Context(), g); err != nil {
		t.Errorf("VerifyGone once no longer listed: %v", err)
	}

	plain := newConnector(t, s.URL, nil)
	if got, err := plain.List(t.Context()); got != nil || err != nil {
		t.Errorf("List without a list URL = %v, %v; want nothing", got, err)
	}
}

func TestFailedCalls(t *testing.T) {
	t.Parallel()
	huge := `{"receipt":{"x":"` + strings.Repeat("a", webhook.MaxResponseBytes) + `"}}`
	long := strings.Repeat("b", 5000)
	tests := []struct {
		name          string
		answer        http.HandlerFunc
		call          string // provision, revoke or extend
		wantErr       string
		unrecoverable bool
	}{
		{name: "500", answer: answerJSON(500, `{"error":"db down"}`), call: "provision", wantErr: `answered 500 Internal Server Error: {"error":"db down"}`},
		{name: "503 on revoke", answer: answerJSON(503, ``), call: "revoke", wantErr: "answered 503"},
		{name: "400 on provision", answer: answerJSON(400, `no such user`), call: "provision", wantErr: "answered 400 Bad Request: no such user", unrecoverable: true},
		{name: "403 on extend", answer: answerJSON(403, ``), call: "extend", wantErr: "answered 403", unrecoverable: true},
		{name: "400 on revoke", answer: answerJSON(400, ``), call: "revoke", wantErr: "answered 400"},
		{name: "429", answer: answerJSON(429, ``), call: "provision", wantErr: "answered 429"},
		{name: "408", answer: answerJSON(408, ``), call: "provision", wantErr: "answered 408"},
		{name: "redirect not followed", answer: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}, call: "revoke", wantErr: "answered 307"},
		{name: "huge", answer: answerJSON(200, huge), call: "provision", wantErr: "larger than 1048576 bytes"},
		{name: "huge on revoke", answer: answerJSON(200, huge), call: "revoke", wantErr: "larger than 1048576 bytes"},
		{name: "malformed", answer: answerJSON(200, `{"credentials":`), call: "provision", wantErr: "not valid JSON"},
		{name: "array", answer: answerJSON(200, `[1,2]`), call: "revoke", wantErr: "not a"},
		{name: "wrong type", answer: answerJSON(200, `{"receipt":"done"}`), call: "revoke", wantErr: `"receipt" is not a map[string]string`},
		{name: "trailing data", answer: answerJSON(200, `{} {}`), call: "provision", wantErr: "not valid JSON"},
		{name: "empty credentials", answer: answerJSON(200, `{"credentials":{"kind":"token"}}`), call: "provision", wantErr: "neither a value nor instructions"},
		{name: "long error body", answer: answerJSON(502, long), call: "revoke", wantErr: "answered 502"},
		{name: "echoed secret", answer: answerJSON(500, "bad key "+string(secret)+" "+long), call: "provision", wantErr: "bad key xxxxx"},
		{name: "echoed secret in JSON", answer: answerJSON(200, `{"receipt":{"k":"`+string(secret)+`"`), call: "provision", wantErr: "not valid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, tt.answer)
			c := newConnector(t, s.URL, nil)
			var err error
			switch tt.call {
			case "provision":
				_, err = c.Provision(t.Context(), grant())
			case "revoke":
				err = c.Revoke(t.Context(), grant())
				if err != nil {
					if _, verr := c.VerifyGone(t.Context(), grant()); verr == nil {
						t.Error("VerifyGone succeeded after a failed revoke")
					}
				}
			case "extend":
				_, err = c.Extend(t.Context(), grant())
			}
			if err == nil {
				t.Fatalf("%s succeeded, want an error containing %q", tt.call, tt.wantErr)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", msg, tt.wantErr)
			}
			if !strings.HasPrefix(msg, "webhook connector tickets: "+tt.call+" grant g-1: ") {
				t.Errorf("error %q does not say which connector, call and grant", msg)
			}
			if got := lapse.IsUnrecoverable(err); got != tt.unrecoverable {
				t.Errorf("unrecoverable = %v, want %v", got, tt.unrecoverable)
			}
			if strings.Contains(msg, string(secret)) || strings.Contains(msg, string(secret[:16])) {
				t.Errorf("error shows the secret: %q", msg)
			}
			if len(msg) > 400 {
				t.Errorf("error is %d bytes long; it should quote at most 200 bytes of the body", len(msg))
			}
		})
	}
}

func TestStatusErrorIsMatchable(t *testing.T) {
	t.Parallel()
	s := newServer(t, answerJSON(418, ``))
	c := newConnector(t, s.URL, nil)
	_, err := c.Provision(t.Context(), grant())
	var se *webhook.StatusError
	if !errors.As(err, &se) || se.Code != 418 || se.Event != "provision" || se.Retryable() {
		t.Errorf("error %v: want a StatusError for 418 on provision, not retryable", err)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	c := newConnector(t, s.URL, func(cfg *webhook.Config) { cfg.Timeout = 200 * time.Millisecond })
	start := time.Now()
	err := c.Revoke(t.Context(), grant())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Revoke against a receiver that never answers: %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Revoke took %s with a 200ms timeout", d)
	}
	if lapse.IsUnrecoverable(err) {
		t.Error("a timeout is marked unrecoverable")
	}
	if strings.Contains(err.Error(), string(secret)) {
		t.Errorf("error shows the secret: %v", err)
	}
}

func TestReceiverDown(t *testing.T) {
	t.Parallel()
	s := httptest.NewServer(http.NotFoundHandler())
	url := s.URL
	s.Close()
	c := newConnector(t, url+"?token=sekrit", nil)
	err := c.Revoke(t.Context(), grant())
	if err == nil {
		t.Fatal("Revoke against a closed port succeeded")
	}
	if lapse.IsUnrecoverable(err) {
		t.Error("a refused connection is marked unrecoverable")
	}
	if strings.Contains(err.Error(), "sekrit") {
		t.Errorf("error shows the URL's query: %v", err)
	}
}

func TestCallerContext(t *testing.T) {
	t.Parallel()
	s := newServer(t, answerJSON(200, ``))
	c := newConnector(t, s.URL, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Revoke(ctx, grant()); !errors.Is(err, context.Canceled) {
		t.Errorf("Revoke with a cancelled context: %v", err)
	}
}

func TestBadGrant(t *testing.T) {
	t.Parallel()
	s := newServer(t, answerJSON(200, ``))
	c := newConnector(t, s.URL, nil)
	g := grant()
	g.Settings = "not settings"
	if _, err := c.Provision(t.Context(), g); !lapse.IsUnrecoverable(err) || !errors.Is(err, lapse.ErrInvalid) {
		t.Errorf("Provision with foreign settings: %v", err)
	}
	if err := c.Revoke(t.Context(), g); err != nil {
		t.Errorf("Revoke with foreign settings: %v; a revocation must go out regardless", err)
	}
	g = grant()
	g.ID = ""
	if err := c.Revoke(t.Context(), g); err == nil {
		t.Error("Revoke of a grant without id succeeded")
	}
	calls := s.recorded()
	if len(calls) != 1 || !strings.Contains(string(calls[0].body), `"params":{}`) {
		t.Errorf("calls %v: want only the revoke, without params", calls)
	}
}

func TestRetriesHaveDistinctSignatures(t *testing.T) {
	t.Parallel()
	s := newServer(t, answerJSON(200, ``))
	c := newConnector(t, s.URL, func(cfg *webhook.Config) { cfg.Now = func() time.Time { return expires } })
	for range 2 {
		if err := c.Revoke(t.Context(), grant()); err != nil {
			t.Fatal(err)
		}
	}
	calls := s.recorded()
	if a, b := calls[0].header.Get(webhook.SignatureHeader), calls[1].header.Get(webhook.SignatureHeader); a == b {
		t.Errorf("two calls in the same second have the same signature %s", a)
	}
	if a, b := calls[0].header.Get(webhook.IdempotencyHeader), calls[1].header.Get(webhook.IdempotencyHeader); a != b {
		t.Errorf("a retry has another idempotency key: %s, then %s", a, b)
	}
}
