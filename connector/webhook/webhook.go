package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/lapse-access/lapse"
)

// Defaults and limits.
const (
	// DefaultTimeout bounds each call when [Config.Timeout] is zero.
	DefaultTimeout = 10 * time.Second
	// MinSecretLen is the shortest HMAC key [New] accepts, in bytes.
	MinSecretLen = 32
	// MaxResponseBytes is the largest response body the connector reads;
	// a larger one is an error.
	MaxResponseBytes = 1 << 20
)

// Events, the "event" field of a call.
const (
	EventProvision = "provision"
	EventRevoke    = "revoke"
	EventExtend    = "extend"
	EventList      = "list"
)

// Header names.
const (
	// SignatureHeader carries "t=<unix seconds>,v1=<hex HMAC-SHA256>".
	SignatureHeader = "Lapse-Signature"
	// IdempotencyHeader carries the call's idempotency key.
	IdempotencyHeader = "Idempotency-Key"
)

// maxRevoked bounds how many revocation receipts wait in memory for
// [Connector.VerifyGone].
const maxRevoked = 10_000

// Log attribute keys.
const (
	logSystem    = "system"
	logConnector = "connector"
	logGrant     = "grant"
	logEvent     = "event"
	logStatus    = "status"
	logElapsed   = "elapsed"
)

// Config configures a [Connector].
type Config struct {
	// Name is the connector's name in the Lapse configuration; errors and
	// logs mention it. Required.
	Name string
	// ProvisionURL receives provision calls. Required.
	ProvisionURL string
	// RevokeURL receives revoke calls. Required.
	RevokeURL string
	// ExtendURL receives extend calls. Optional: when empty, extend calls
	// go to ProvisionURL, still with event "extend".
	ExtendURL string
	// ListURL, when set, answers list calls with the grant ids that have
	// access in the target, for reconciliation and for
	// [Connector.VerifyGone]. Optional.
	ListURL string
	// Secret is the HMAC-SHA256 key shared with the receiver, at least
	// [MinSecretLen] bytes. It is secret: the caller reads it from the
	// environment or a file, and the connector never shows it.
	Secret []byte
	// Timeout bounds each call, response included. Zero means
	// [DefaultTimeout].
	Timeout time.Duration
	// HTTP sends the calls. Nil means a client of its own. The connector
	// uses a copy that follows no redirects, so that a signed body never
	// goes to an address that is not configured.
	HTTP *http.Client
	// Now returns the current time, for signatures and receipts; time.Now
	// if nil.
	Now func() time.Time
	// Logger receives the connector's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Connector provisions access by calling a receiver over HTTPS with signed
// JSON. It implements [lapse.Connector] and [lapse.RoleDecoder] and is safe
// for concurrent use.
type Connector struct {
	name    string
	urls    map[string]*url.URL // by event
	secret  []byte
	timeout time.Duration
	client  *http.Client
	now     func() time.Time
	logger  *slog.Logger

	mu      sync.Mutex
	revoked map[string]revocation // by grant id
}

// revocation is a revoke call that the receiver confirmed.
type revocation struct {
	at      time.Time
	status  int
	receipt map[string]string
}

var (
	_ lapse.Connector   = (*Connector)(nil)
	_ lapse.RoleDecoder = (*Connector)(nil)
)

// New checks cfg and returns a connector. It calls nothing.
func New(cfg Config) (*Connector, error) {
	if cfg.Name == "" {
		return nil, lapse.Invalidf("webhook connector: name is required")
	}
	if len(cfg.Secret) < MinSecretLen {
		return nil, lapse.Invalidf("webhook connector %s: the secret must be at least %d bytes, got %d", cfg.Name, MinSecretLen, len(cfg.Secret))
	}
	if cfg.Timeout < 0 {
		return nil, lapse.Invalidf("webhook connector %s: timeout must not be negative, got %s", cfg.Name, cfg.Timeout)
	}
	c := &Connector{
		name:    cfg.Name,
		urls:    map[string]*url.URL{},
		secret:  append([]byte(nil), cfg.Secret...),
		timeout: cfg.Timeout,
		now:     cfg.Now,
		logger:  cfg.Logger,
		revoked: map[string]revocation{},
	}
	for _, u := range []struct {
		event, key, raw string
		required        bool
	}{
		{EventProvision, "provision_url", cfg.ProvisionURL, true},
		{EventRevoke, "revoke_url", cfg.RevokeURL, true},
		{EventExtend, "extend_url", cfg.ExtendURL, false},
		{EventList, "list_url", cfg.ListURL, false},
	} {
		if u.raw == "" {
			if u.required {
				return nil, lapse.Invalidf("webhook connector %s: %s is required", cfg.Name, u.key)
			}
			continue
		}
		parsed, err := checkURL(u.raw)
		if err != nil {
			return nil, lapse.Invalidf("webhook connector %s: %s: %v", cfg.Name, u.key, err)
		}
		c.urls[u.event] = parsed
	}
	if c.urls[EventExtend] == nil {
		c.urls[EventExtend] = c.urls[EventProvision]
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	c.logger = c.logger.With(logSystem, "connector/webhook", logConnector, cfg.Name)
	client := http.Client{}
	if cfg.HTTP != nil {
		client = *cfg.HTTP
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.client = &client
	return c, nil
}

// checkURL parses an absolute http or https URL without user information.
// Its errors never quote the URL, which may hold a token in its query.
func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("the scheme must be http or https")
	case u.Host == "":
		return nil, errors.New("the URL has no host")
	case u.User != nil:
		return nil, errors.New("the URL must not hold a user name or password; the receiver authenticates calls by their signature")
	case u.Fragment != "":
		return nil, errors.New("the URL must not have a fragment")
	}
	return u, nil
}

// Name returns the connector's name.
func (c *Connector) Name() string { return c.name }

// Provision calls the provision URL. The receiver's credentials, if any,
// are handed to the requester once; its receipt becomes the audit
// record's details. The Ref is the grant id. A 4xx answer other than 408,
// 409, 425 and 429 is marked [lapse.Unrecoverable]: the receiver refused
// the grant, and asking again would not change its mind.
func (c *Connector) Provision(ctx context.Context, g lapse.Grant) (lapse.Provisioned, error) {
	res, err := c.call(ctx, EventProvision, g)
	if err != nil {
		return lapse.Provisioned{}, err
	}
	c.forget(g.ID)
	return lapse.Provisioned{Ref: g.ID, Credentials: res.Credentials, Details: res.Receipt}, nil
}

// Revoke calls the revoke URL. A 2xx answer confirms that the access is
// gone; the receiver must answer so for a grant it does not know. Its
// receipt is kept in memory for [Connector.VerifyGone]. Errors are never
// marked unrecoverable: revocation is retried until the receiver
// confirms it.
func (c *Connector) Revoke(ctx context.Context, g lapse.Grant) error {
	res, err := c.call(ctx, EventRevoke, g)
	if err != nil {
		return err
	}
	c.remember(g.ID, revocation{at: c.now(), status: res.Status, receipt: res.Receipt})
	return nil
}

// VerifyGone returns the receipt of the last revoke call for g that the
// receiver confirmed in this process: the receipt it sent, or, if it sent
// none, one that records the 2xx status and the time. With a list URL it
// also checks that the receiver no longer lists the grant. It returns an
// error when no confirmed revoke call is known, so that the scheduler
// revokes again.
func (c *Connector) VerifyGone(ctx context.Context, g lapse.Grant) (map[string]string, error) {
	c.mu.Lock()
	r, ok := c.revoked[g.ID]
	c.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("webhook connector %s: grant %s: no revocation confirmed by the receiver since this process started; revoke again", c.name, g.ID)
	}
	if c.urls[EventList] != nil {
		ids, err := c.listIDs(ctx)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if id == g.ID {
				return nil, fmt.Errorf("webhook connector %s: grant %s: the receiver confirmed the revocation but still lists the grant", c.name, g.ID)
			}
		}
	}
	receipt := map[string]string{
		"receiver":     c.name,
		"confirmed_at": r.at.UTC().Format(time.RFC3339),
		"status":       strconv.Itoa(r.status),
	}
	if len(r.receipt) > 0 {
		receipt = make(map[string]string, len(r.receipt))
		for k, v := range r.receipt {
			receipt[k] = v
		}
	}
	c.mu.Lock()
	delete(c.revoked, g.ID)
	c.mu.Unlock()
	return receipt, nil
}

// Extend calls the extend URL, or the provision URL when none is
// configured, with event "extend" and the new expiry. It returns the
// receiver's credentials, if any. 4xx answers are unrecoverable as for
// [Connector.Provision].
func (c *Connector) Extend(ctx context.Context, g lapse.Grant) (*lapse.Credentials, error) {
	res, err := c.call(ctx, EventExtend, g)
	if err != nil {
		return nil, err
	}
	c.forget(g.ID)
	return res.Credentials, nil
}

// List returns the grants that the receiver says have access, when a list
// URL is configured, and nothing otherwise. Each access's Ref is its grant
// id.
func (c *Connector) List(ctx context.Context) ([]lapse.Existing, error) {
	if c.urls[EventList] == nil {
		return nil, nil
	}
	ids, err := c.listIDs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]lapse.Existing, 0, len(ids))
	for _, id := range ids {
		out = append(out, lapse.Existing{Ref: id, GrantID: id})
	}
	return out, nil
}

// listIDs calls the list URL.
func (c *Connector) listIDs(ctx context.Context) ([]string, error) {
	res, err := c.call(ctx, EventList, lapse.Grant{})
	if err != nil {
		return nil, err
	}
	return res.GrantIDs, nil
}

// remember keeps a confirmed revocation for VerifyGone. When too many
// wait, the oldest go: VerifyGone then fails and the scheduler revokes
// again.
func (c *Connector) remember(id string, r revocation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.revoked[id]; !ok && len(c.revoked) >= maxRevoked {
		var oldest string
		for k, v := range c.revoked {
			if oldest == "" || v.at.Before(c.revoked[oldest].at) {
				oldest = k
			}
		}
		delete(c.revoked, oldest)
	}
	c.revoked[id] = r
}

// forget drops a kept revocation: the grant has access again.
func (c *Connector) forget(id string) {
	c.mu.Lock()
	delete(c.revoked, id)
	c.mu.Unlock()
}
