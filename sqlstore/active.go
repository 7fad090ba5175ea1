package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/lapse-access/lapse"
)

// activeIndex holds the active grants in memory for the access check, for
// dialects where this process makes every write (SQLite: one writer, and the
// data directory is locked to one server). It is loaded at open and changed
// only after a transaction commits, with that transaction's changes, while
// the writer token is held, so it is exactly the committed state.
type activeIndex struct {
	mu     sync.RWMutex
	grants map[grantKey][]activeGrant
	byID   map[string]grantKey
}

type grantKey struct{ user, resource, role string }

type activeGrant struct {
	id      string
	expires time.Time
}

// activeChange is one request's effect on the index: active with an expiry,
// or not active.
type activeChange struct {
	key     grantKey
	id      string
	active  bool
	expires time.Time
}

func changeOf(r *lapse.Request) activeChange {
	return activeChange{
		key: grantKey{r.User, r.Resource, r.Role}, id: r.ID,
		active: r.State == lapse.StateActive, expires: r.ExpiresAt,
	}
}

func loadActiveIndex(ctx context.Context, db *sql.DB) (*activeIndex, error) {
	rows, err := db.QueryContext(ctx, `SELECT id, user_name, resource, role, expires_at FROM requests WHERE state = 'active'`)
	if err != nil {
		return nil, fmt.Errorf("load active grants: %w", err)
	}
	defer rows.Close()
	ix := &activeIndex{grants: map[grantKey][]activeGrant{}, byID: map[string]grantKey{}}
	for rows.Next() {
		var c activeChange
		var exp sql.NullInt64
		if err := rows.Scan(&c.id, &c.key.user, &c.key.resource, &c.key.role, &exp); err != nil {
			return nil, fmt.Errorf("load active grants: %w", err)
		}
		c.active, c.expires = true, decodeTime(exp)
		ix.applyLocked(c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load active grants: %w", err)
	}
	return ix, nil
}

// apply records committed changes, in order.
func (ix *activeIndex) apply(cs []activeChange) {
	if len(cs) == 0 {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for _, c := range cs {
		ix.applyLocked(c)
	}
}

func (ix *activeIndex) applyLocked(c activeChange) {
	if old, ok := ix.byID[c.id]; ok {
		gs := ix.grants[old]
		for i, g := range gs {
			if g.id == c.id {
				gs = append(gs[:i], gs[i+1:]...)
				break
			}
		}
		if len(gs) == 0 {
			delete(ix.grants, old)
		} else {
			ix.grants[old] = gs
		}
		delete(ix.byID, c.id)
	}
	if c.active {
		ix.grants[c.key] = append(ix.grants[c.key], activeGrant{id: c.id, expires: c.expires})
		ix.byID[c.id] = c.key
	}
}

// find returns the grant of key active at now that expires last.
func (ix *activeIndex) find(key grantKey, now time.Time) (activeGrant, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var best activeGrant
	found := false
	for _, g := range ix.grants[key] {
		if g.expires.After(now) && (!found || g.expires.After(best.expires) || (g.expires.Equal(best.expires) && g.id < best.id)) {
			best, found = g, true
		}
	}
	return best, found
}
