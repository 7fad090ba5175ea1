package broker

import (
	"context"
	"slices"

	"github.com/lapse-access/lapse"
)

// maxTimeline bounds the records [Broker.Timeline] returns.
const maxTimeline = 1000

// Timeline returns the audit records of request id, oldest first, to
// whoever may see the request ([Broker.Get]). The requester, admins and
// auditors get every record; an approver gets the lifecycle without the activity
// records (what the requester did with the access).
func (b *Broker) Timeline(ctx context.Context, p lapse.Principal, id string) ([]lapse.AuditEvent, error) {
	r, err := b.Get(ctx, p, id)
	if err != nil {
		return nil, err
	}
	evs, err := b.Store.ListAudit(ctx, lapse.AuditFilter{RequestID: r.ID, Limit: maxTimeline})
	if err != nil {
		return nil, err
	}
	if !p.ReadsAll() && r.User != p.Name {
		evs = slices.DeleteFunc(evs, func(e lapse.AuditEvent) bool { return e.Type == lapse.EvActivity })
	}
	return evs, nil
}
