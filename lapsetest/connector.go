package lapsetest

import (
	"context"
	"errors"
	"sync"

	"github.com/lapse-access/lapse"
)

// Connector is a recording [lapse.Connector] that keeps its accesses in
// memory. Set Fail* to make calls fail.
type Connector struct {
	mu sync.Mutex
	// Live is the set of grant ids provisioned and not revoked.
	live map[string]lapse.Grant
	// Calls counts calls by method name.
	calls map[string]int
	// Revoked counts successful revocations by grant id.
	revoked map[string]int

	// FailProvision, if set, is returned by Provision.
	FailProvision error
	// FailRevoke, if set, is returned by Revoke.
	FailRevoke error
	// FailList, if set, is returned by List.
	FailList error
	// OnProvision, if set, runs inside Provision before it records the
	// access.
	OnProvision func(g lapse.Grant)
}

var _ lapse.Connector = (*Connector)(nil)

// NewConnector returns an empty recording connector.
func NewConnector() *Connector {
	return &Connector{live: map[string]lapse.Grant{}, calls: map[string]int{}, revoked: map[string]int{}}
}

func (c *Connector) count(m string) {
	c.mu.Lock()
	c.calls[m]++
	c.mu.Unlock()
}

// SetFailProvision sets FailProvision safely while the connector is in use.
func (c *Connector) SetFailProvision(err error) {
	c.mu.Lock()
	c.FailProvision = err
	c.mu.Unlock()
}

// SetFailRevoke sets FailRevoke safely while the connector is in use.
func (c *Connector) SetFailRevoke(err error) {
	c.mu.Lock()
	c.FailRevoke = err
	c.mu.Unlock()
}

// SetFailList sets FailList safely while the connector is in use.
func (c *Connector) SetFailList(err error) {
	c.mu.Lock()
	c.FailList = err
	c.mu.Unlock()
}

// Provision records the grant as live.
func (c *Connector) Provision(ctx context.Context, g lapse.Grant) (lapse.Provisioned, error) {
	c.count("Provision")
	if c.OnProvision != nil {
		c.OnProvision(g)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.FailProvision != nil {
		return lapse.Provisioned{}, c.FailProvision
	}
	c.live[g.ID] = g
	return lapse.Provisioned{Ref: "ref-" + g.ID, Credentials: &lapse.Credentials{Kind: "text", Value: "secret-" + g.ID}}, nil
}

// Revoke removes the grant.
func (c *Connector) Revoke(ctx context.Context, g lapse.Grant) error {
	c.count("Revoke")
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.FailRevoke != nil {
		return c.FailRevoke
	}
	delete(c.live, g.ID)
	c.revoked[g.ID]++
	return nil
}

// VerifyGone checks the grant is not live.
func (c *Connector) VerifyGone(ctx context.Context, g lapse.Grant) (map[string]string, error) {
	c.count("VerifyGone")
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.live[g.ID]; ok {
		return nil, errors.New("still live")
	}
	return map[string]string{"grant": g.ID, "live": "no"}, nil
}

// Extend records the new expiry.
func (c *Connector) Extend(ctx context.Context, g lapse.Grant) (*lapse.Credentials, error) {
	c.count("Extend")
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.live[g.ID]; !ok {
		return nil, errors.New("not live")
	}
	c.live[g.ID] = g
	return nil, nil
}

// List returns the live grants.
func (c *Connector) List(ctx context.Context) ([]lapse.Existing, error) {
	c.count("List")
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.FailList != nil {
		return nil, c.FailList
	}
	var out []lapse.Existing
	for id := range c.live {
		out = append(out, lapse.Existing{Ref: "ref-" + id, GrantID: id})
	}
	return out, nil
}

// IsLive reports whether the grant is provisioned and not revoked.
func (c *Connector) IsLive(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.live[id]
	return ok
}

// Live returns the live grant with id.
func (c *Connector) Live(id string) (lapse.Grant, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.live[id]
	return g, ok
}

// Calls returns how often method was called.
func (c *Connector) Calls(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[method]
}

// Revocations returns how often the grant was revoked successfully.
func (c *Connector) Revocations(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.revoked[id]
}
