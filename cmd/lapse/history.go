package main

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/signals"
)

// history is what the risk score knows of a user's habits, from their
// recent requests and refusals. It is cached for a minute per user, so
// that re-evaluating many grants does not read it again for each.
type history struct {
	store   lapse.Store
	network *signals.Network
	logger  *slog.Logger

	mu    sync.Mutex
	cache map[string]userHistory
}

type userHistory struct {
	at        time.Time
	countries []string
	hours     []int
	refused   int
}

// minHistory is how many earlier requests make a habit: below it, new
// countries and unusual hours are not scored.
const minHistory = 5

func (h *history) of(ctx context.Context, user string, now time.Time) userHistory {
	h.mu.Lock()
	if c, ok := h.cache[user]; ok && now.Sub(c.at) < time.Minute && !now.Before(c.at) {
		h.mu.Unlock()
		return c
	}
	h.mu.Unlock()
	u := userHistory{at: now}
	rs, err := h.store.ListRequests(ctx, lapse.RequestFilter{User: user, Limit: 50})
	if err != nil {
		h.logger.Warn("read request history", "user", user, "err", err)
	}
	if len(rs) >= minHistory {
		for _, r := range rs {
			if ip, err := netip.ParseAddr(r.ClientIP); err == nil {
				if c := h.network.Lookup(ip).Country; c != "" && !slices.Contains(u.countries, c) {
					u.countries = append(u.countries, c)
				}
			}
			if hr := r.CreatedAt.UTC().Hour(); !slices.Contains(u.hours, hr) {
				u.hours = append(u.hours, hr)
			}
		}
	}
	refused, err := h.store.ListAudit(ctx, lapse.AuditFilter{User: user, Type: lapse.EvRefused, Since: now.Add(-time.Hour), Limit: 100})
	if err != nil {
		h.logger.Warn("count recent refusals", "user", user, "err", err)
	}
	u.refused = len(refused)
	h.mu.Lock()
	if h.cache == nil || len(h.cache) > 10000 {
		h.cache = map[string]userHistory{}
	}
	h.cache[user] = u
	h.mu.Unlock()
	return u
}
