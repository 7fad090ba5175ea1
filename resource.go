package lapse

import (
	"slices"
	"time"
)

// Principal is an authenticated caller: a person or a service.
type Principal struct {
	Name   string
	Groups []string
	// Admin principals may see every request and revoke any grant.
	Admin bool
	// Auditor principals may read every request and the whole audit log,
	// and change nothing.
	Auditor bool
	// Service is set for service accounts (machine identities).
	Service bool
	// Session is the id of the sign-in session the caller authenticated
	// with; empty for static and service tokens.
	Session string
	// MFA is what is known of the caller's second factor.
	MFA MFASignals
}

// ReadsAll reports whether p may read every request and audit record.
func (p Principal) ReadsAll() bool { return p.Admin || p.Auditor }

// InAny reports whether p belongs to at least one of groups.
func (p Principal) InAny(groups []string) bool {
	for _, g := range groups {
		if slices.Contains(p.Groups, g) {
			return true
		}
	}
	return false
}

// Resource is something access is granted to, through one connector.
type Resource struct {
	Name        string
	Connector   string
	Environment string
	Tags        []string
	Roles       []Role
	// TimeZone is where policies read the time of day; nil means UTC.
	TimeZone *time.Location
}

// Role returns the role named name, or false.
func (r *Resource) Role(name string) (*Role, bool) {
	for i := range r.Roles {
		if r.Roles[i].Name == name {
			return &r.Roles[i], true
		}
	}
	return nil, false
}

// Role is one level of access on a resource.
type Role struct {
	Name        string
	MaxDuration time.Duration
	// Approvals is how many distinct approvers must approve; 0 auto-approves.
	Approvals int
	// Approvers are the groups whose members may approve.
	Approvers []string
	// Requesters are the groups whose members may ask for this role.
	Requesters []string
	// Settings is the connector's own configuration of this role, decoded
	// and validated by the connector.
	Settings any
}

// Catalog is the set of resources Lapse grants access to.
type Catalog struct {
	Resources []Resource
}

// Lookup returns the resource and role, or an [ErrNotFound] error naming
// whichever is missing.
func (c *Catalog) Lookup(resource, role string) (*Resource, *Role, error) {
	for i := range c.Resources {
		res := &c.Resources[i]
		if res.Name != resource {
			continue
		}
		ro, ok := res.Role(role)
		if !ok {
			names := make([]string, len(res.Roles))
			for j, r := range res.Roles {
				names[j] = r.Name
			}
			return nil, nil, NotFoundf("resource %q has no role %q (roles: %v)", resource, role, names)
		}
		return res, ro, nil
	}
	return nil, nil, NotFoundf("unknown resource %q", resource)
}
