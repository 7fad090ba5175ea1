package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector/webhook"
	"github.com/lapse-access/lapse/lapsetest/conntest"
)

var secret = []byte("an example secret of at least 32 bytes, shared")

// capture records the calls that reach the receiver, so that tests can
// send them again.
type capture struct {
	next http.Handler
	mu   sync.Mutex
	reqs []captured
}

type captured struct {
	header http.Header
	body   []byte
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.reqs = append(c.reqs, captured{header: r.Header.Clone(), body: b})
	c.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(b))
	c.next.ServeHTTP(w, r)
}

func (c *capture) last() captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reqs[len(c.reqs)-1]
}

// setup starts the example receiver behind a real HTTP server and returns
// a connector that calls it.
func setup(t *testing.T) (*Receiver, *capture, *httptest.Server, *webhook.Connector) {
	t.Helper()
	rc := NewReceiver(secret, time.Now)
	cp := &capture{next: rc}
	srv := httptest.NewServer(cp)
	t.Cleanup(srv.Close)
	return rc, cp, srv, connectorFor(t, srv.URL)
}

func connectorFor(t *testing.T, base string) *webhook.Connector {
	t.Helper()
	u := base + "/lapse"
	c, err := webhook.New(webhook.Config{
		Name: "example", ProvisionURL: u, RevokeURL: u, ListURL: u, Secret: secret, Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newGrant(id string) lapse.Grant {
	return lapse.Grant{ID: id, User: "alice", Resource: "billing", Role: "admin", ExpiresAt: time.Now().Add(time.Hour), Reason: "INC-1"}
}

// send posts body with header to srv and returns the status.
func send(t *testing.T, srv *httptest.Server, header http.Header, body []byte) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/lapse", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestConformance(t *testing.T) {
	conntest.Run(t, func(t *testing.T) conntest.Harness {
		rc, _, _, c := setup(t)
		return conntest.Harness{
			Connector: c,
			Grant: func(id, user string, expires time.Time) lapse.Grant {
				return lapse.Grant{ID: id, User: user, Resource: "billing", Role: "admin", ExpiresAt: expires,
					Settings: webhook.RoleSettings{Params: map[string]string{"group": "admins"}}}
			},
			Usable: func(_ context.Context, g lapse.Grant, p lapse.Provisioned) error {
				if p.Credentials == nil {
					return errors.New("no credentials")
				}
				if id, ok := rc.Authorized(p.Credentials.Value); !ok || id != g.ID {
					return errors.New("token refused")
				}
				return nil
			},
		}
	})
}

func TestProvisionRevoke(t *testing.T) {
	t.Parallel()
	rc, _, _, c := setup(t)
	g := newGrant("g-1")
	p, err := c.Provision(t.Context(), g)
	if err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if p.Credentials == nil || p.Credentials.Kind != "token" || p.Credentials.Value == "" {
		t.Fatalf("Provision gave credentials %+v", p.Credentials)
	}
	if _, ok := rc.Authorized(p.Credentials.Value); !ok {
		t.Error("the token is refused after Provision")
	}
	again, err := c.Provision(t.Context(), g)
	if err != nil || again.Credentials == nil || again.Credentials.Value != p.Credentials.Value {
		t.Errorf("a second Provision gave %+v, %v; want the same token", again.Credentials, err)
	}
	for i := range 2 {
		if err := c.Revoke(t.Context(), g); err != nil {
			t.Fatalf("Revoke #%d: %v", i+1, err)
		}
		receipt, err := c.VerifyGone(t.Context(), g)
		if err != nil || receipt["token"] != "withdrawn" || receipt["revoked_at"] == "" {
			t.Errorf("VerifyGone after Revoke #%d = %v, %v", i+1, receipt, err)
		}
	}
	if _, ok := rc.Authorized(p.Credentials.Value); ok {
		t.Error("the token still works after Revoke")
	}
	// A provision that arrives after the revocation (a late retry) is
	// refused for good.
	if _, err := c.Provision(t.Context(), g); err == nil || !lapse.IsUnrecoverable(err) {
		t.Errorf("Provision after Revoke: %v, want an unrecoverable error", err)
	}
}

func TestExtendMovesExpiry(t *testing.T) {
	t.Parallel()
	rc, _, _, c := setup(t)
	g := newGrant("g-ext")
	g.ExpiresAt = time.Now().Add(time.Second)
	p, err := c.Provision(t.Context(), g)
	if err != nil {
		t.Fatal(err)
	}
	g.ExpiresAt = time.Now().Add(time.Hour)
	if _, err := c.Extend(t.Context(), g); err != nil {
		t.Fatalf("Extend: %v", err)
	}
	rc.mu.Lock()
	got := rc.grants[g.ID].expires
	rc.mu.Unlock()
	if !got.Equal(g.ExpiresAt.Truncate(time.Second)) {
		t.Errorf("expiry %s after Extend, want %s", got, g.ExpiresAt)
	}
	if _, ok := rc.Authorized(p.Credentials.Value); !ok {
		t.Error("the token is refused after Extend")
	}
	if _, err := c.Extend(t.Context(), newGrant("unknown")); !lapse.IsUnrecoverable(err) {
		t.Errorf("Extend of an unknown grant: %v, want an unrecoverable error", err)
	}
}

func TestRefusedCalls(t *testing.T) {
	t.Parallel()
	_, cp, srv, c := setup(t)
	if _, err := c.Provision(t.Context(), newGrant("g-2")); err != nil {
		t.Fatal(err)
	}
	orig := cp.last()

	t.Run("replayed", func(t *testing.T) {
		if got := send(t, srv, orig.header, orig.body); got != http.StatusUnauthorized {
			t.Errorf("replay answered %d, want 401", got)
		}
	})
	t.Run("altered body", func(t *testing.T) {
		altered := bytes.Replace(orig.body, []byte(`"user":"alice"`), []byte(`"user":"mallory"`), 1)
		if bytes.Equal(altered, orig.body) {
			t.Fatal("the body did not change")
		}
		if got := send(t, srv, orig.header, altered); got != http.StatusUnauthorized {
			t.Errorf("altered body answered %d, want 401", got)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		h := orig.header.Clone()
		h.Set(webhook.SignatureHeader, webhook.Sign([]byte("another secret of at least 32 bytes...."), orig.body, time.Now()))
		if got := send(t, srv, h, orig.body); got != http.StatusUnauthorized {
			t.Errorf("wrong secret answered %d, want 401", got)
		}
	})
	t.Run("no signature", func(t *testing.T) {
		h := orig.header.Clone()
		h.Del(webhook.SignatureHeader)
		if got := send(t, srv, h, orig.body); got != http.StatusUnauthorized {
			t.Errorf("unsigned call answered %d, want 401", got)
		}
	})
	for _, skew := range []time.Duration{-6 * time.Minute, 6 * time.Minute} {
		t.Run("timestamp off by "+skew.String(), func(t *testing.T) {
			h := orig.header.Clone()
			h.Set(webhook.SignatureHeader, webhook.Sign(secret, orig.body, time.Now().Add(skew)))
			if got := send(t, srv, h, orig.body); got != http.StatusUnauthorized {
				t.Errorf("stale call answered %d, want 401", got)
			}
		})
	}
	t.Run("fresh signature accepted", func(t *testing.T) {
		h := orig.header.Clone()
		h.Set(webhook.SignatureHeader, webhook.Sign(secret, orig.body, time.Now().Add(-time.Minute)))
		if got := send(t, srv, h, orig.body); got != http.StatusOK {
			t.Errorf("a retry with a fresh signature answered %d, want 200", got)
		}
	})
}

func TestReceiverDownDuringRevoke(t *testing.T) {
	t.Parallel()
	rc := NewReceiver(secret, time.Now)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: rc}}
	srv.Start()
	c := connectorFor(t, "http://"+addr)
	g := newGrant("g-down")
	p, err := c.Provision(t.Context(), g)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()

	if err := c.Revoke(t.Context(), g); err == nil {
		t.Fatal("Revoke succeeded while the receiver is down")
	}
	if _, err := c.VerifyGone(t.Context(), g); err == nil {
		t.Fatal("VerifyGone succeeded while the receiver is down")
	}
	if _, ok := rc.Authorized(p.Credentials.Value); !ok {
		t.Fatal("the token stopped working although no revoke reached the receiver")
	}

	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: rc}}
	srv.Start()
	defer srv.Close()
	if err := c.Revoke(t.Context(), g); err != nil {
		t.Fatalf("Revoke once the receiver is back: %v", err)
	}
	if _, err := c.VerifyGone(t.Context(), g); err != nil {
		t.Errorf("VerifyGone: %v", err)
	}
	if _, ok := rc.Authorized(p.Credentials.Value); ok {
		t.Error("the token still works after Revoke")
	}
}

func TestSecretNotInErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "refused: "+r.Header.Get(webhook.SignatureHeader)+" "+string(secret), http.StatusForbidden)
	}))
	defer srv.Close()
	c := connectorFor(t, srv.URL)
	_, err := c.Provision(t.Context(), newGrant("g-3"))
	if err == nil || strings.Contains(err.Error(), string(secret)) {
		t.Errorf("Provision: %v; want an error without the secret", err)
	}
}

func TestUnknownEvent(t *testing.T) {
	t.Parallel()
	_, _, srv, _ := setup(t)
	body := []byte(`{"event":"delete-everything","grant_id":"g-4"}`)
	h := http.Header{"Content-Type": {"application/json"}}
	h.Set(webhook.SignatureHeader, webhook.Sign(secret, body, time.Now()))
	if got := send(t, srv, h, body); got != http.StatusBadRequest {
		t.Errorf("unknown event answered %d, want 400", got)
	}
}
