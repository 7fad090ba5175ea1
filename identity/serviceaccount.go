package identity

import (
	"context"
	"regexp"
	"slices"

	"github.com/lapse-access/lapse"
)

var serviceNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// CreateServiceAccount creates a service account with groups and returns
// its token, which is shown this once and stored only as a hash. Admins
// only.
func (s *Service) CreateServiceAccount(ctx context.Context, p lapse.Principal, name string, groups []string) (string, lapse.ServiceAccount, error) {
	if !p.Admin {
		return "", lapse.ServiceAccount{}, lapse.Forbiddenf("only admins may create service accounts")
	}
	if !serviceNameRE.MatchString(name) {
		return "", lapse.ServiceAccount{}, lapse.Invalidf("service account name %q: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	if slices.ContainsFunc(s.Local, func(u LocalUser) bool { return u.Name == name }) {
		return "", lapse.ServiceAccount{}, lapse.Conflictf("%q is a user of the config file; pick another name", name)
	}
	for _, g := range groups {
		if !serviceNameRE.MatchString(g) {
			return "", lapse.ServiceAccount{}, lapse.Invalidf("group %q: use letters, digits, '.', '_' or '-'", g)
		}
	}
	groups = slices.Compact(slices.Sorted(slices.Values(groups)))
	tok := randomToken(servicePrefix)
	now := s.now()
	a := lapse.ServiceAccount{Name: name, Groups: groups, TokenHash: lapse.HashToken(tok), CreatedBy: p.Name, CreatedAt: now}
	if a.Groups == nil {
		a.Groups = []string{}
	}
	err := s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		if _, err := tx.GetIdentity(ctx, name); err == nil {
			return lapse.Conflictf("%q is a user who signed in; pick another name", name)
		}
		if err := tx.CreateServiceAccount(ctx, a); err != nil {
			return err
		}
		ev := lapse.NewAuditEvent(lapse.EvTokenCreated, p.Name, "", lapse.Request{User: name}, map[string]any{"service": name, "groups": a.Groups}, now)
		ev.To = ""
		return tx.AppendAudit(ctx, ev)
	})
	if err != nil {
		return "", lapse.ServiceAccount{}, err
	}
	return tok, a, nil
}

// ServiceAccounts lists the service accounts, for admins and auditors.
func (s *Service) ServiceAccounts(ctx context.Context, p lapse.Principal) ([]lapse.ServiceAccount, error) {
	if !p.ReadsAll() {
		return nil, lapse.Forbiddenf("only admins and auditors may list service accounts")
	}
	return s.Store.ListServiceAccounts(ctx)
}

// RevokeServiceAccount revokes a service account's token at once. Admins
// only.
func (s *Service) RevokeServiceAccount(ctx context.Context, p lapse.Principal, name, reason string) (lapse.ServiceAccount, error) {
	if !p.Admin {
		return lapse.ServiceAccount{}, lapse.Forbiddenf("only admins may revoke service accounts")
	}
	var a lapse.ServiceAccount
	err := s.Store.Tx(ctx, func(ctx context.Context, tx lapse.Tx) error {
		now := s.now()
		var err error
		if a, err = tx.RevokeServiceAccount(ctx, name, now); err != nil {
			return err
		}
		data := map[string]any{"service": name}
		if reason != "" {
			data["reason"] = reason
		}
		ev := lapse.NewAuditEvent(lapse.EvTokenRevoked, p.Name, "", lapse.Request{User: name}, data, now)
		ev.To = ""
		return tx.AppendAudit(ctx, ev)
	})
	return a, err
}
