package monitor

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/lapse-access/lapse"
)

// MinHistory is how many earlier requests make a habit: below it, new
// countries, devices and unusual hours are neither scored nor alerted.
const MinHistory = 5

// historyRequests is how many of a user's latest requests habits are
// learned from.
const historyRequests = 50

// Habits are what a user's recent requests say about them.
type Habits struct {
	// At is when they were read.
	At time.Time
	// Countries, Hours (UTC) and Devices are those of the user's latest
	// requests; all empty while the user has fewer than [MinHistory].
	Countries []string
	Hours     []int
	Devices   []string
	// Refused counts the requests policy refused the user in the last
	// hour.
	Refused int
}

// History learns users' habits from their recent requests and refusals,
// for the risk score and the anomaly rules. It caches them for a minute
// per user, so that re-evaluating many grants does not read them again
// for each.
type History struct {
	Store lapse.Reader
	// Country returns the country of an address, "" when unknown.
	Country func(netip.Addr) string
	Logger  *slog.Logger

	mu    sync.Mutex
	cache map[string]Habits
}

func (h *History) logger() *slog.Logger {
	if h.Logger == nil {
		return slog.Default().With(logSystem, "monitor")
	}
	return h.Logger
}

// Of returns the habits of user as of now.
func (h *History) Of(ctx context.Context, user string, now time.Time) Habits {
	h.mu.Lock()
	if c, ok := h.cache[user]; ok && now.Sub(c.At) < time.Minute && !now.Before(c.At) {
		h.mu.Unlock()
		return c
	}
	h.mu.Unlock()
	u := Habits{At: now}
	rs, err := h.Store.ListRequests(ctx, lapse.RequestFilter{User: user, Limit: historyRequests})
	if err != nil {
		h.logger().Warn("read request history", "user", user, logErr, err)
	}
	if len(rs) >= MinHistory {
		for _, r := range rs {
			if c := h.country(r.ClientIP); c != "" && !slices.Contains(u.Countries, c) {
				u.Countries = append(u.Countries, c)
			}
			if hr := r.CreatedAt.UTC().Hour(); !slices.Contains(u.Hours, hr) {
				u.Hours = append(u.Hours, hr)
			}
			if r.Device != "" && !slices.Contains(u.Devices, r.Device) {
				u.Devices = append(u.Devices, r.Device)
			}
		}
	}
	refused, err := h.Store.ListAudit(ctx, lapse.AuditFilter{User: user, Type: lapse.EvRefused, Since: now.Add(-time.Hour), Limit: 100})
	if err != nil {
		h.logger().Warn("count recent refusals", "user", user, logErr, err)
	}
	u.Refused = len(refused)
	h.mu.Lock()
	if h.cache == nil || len(h.cache) > 10000 {
		h.cache = map[string]Habits{}
	}
	h.cache[user] = u
	h.mu.Unlock()
	return u
}

// country returns the country of the address ip, "" when unknown.
func (h *History) country(ip string) string {
	if h.Country == nil {
		return ""
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	return h.Country(a.Unmap())
}

// OpenAlertRules returns the rule of each open alert about user, for the
// risk score, which counts them (see signals.Risk).
func (h *History) OpenAlertRules(ctx context.Context, user string) ([]string, error) {
	var out []string
	f := lapse.AlertFilter{User: user, State: lapse.AlertOpen, Limit: 1000}
	for {
		page, err := h.Store.ListAlerts(ctx, f)
		if err != nil {
			return out, err
		}
		for _, a := range page {
			out = append(out, a.Rule)
		}
		if len(page) < f.Limit {
			return out, nil
		}
		f.AfterID = page[len(page)-1].ID
	}
}
