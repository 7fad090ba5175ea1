package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/monitor"
)

// Monitor records reported activity and keeps the anomaly alerts;
// [monitor.Watcher] implements it.
type Monitor interface {
	// Ingest records activity reported by integration; bad input is an
	// error matching [lapse.ErrInvalid].
	Ingest(ctx context.Context, integration string, in monitor.ActivityReport) (monitor.IngestResult, error)
	// Alerts returns the alerts matching f.
	Alerts(ctx context.Context, f lapse.AlertFilter) ([]lapse.Alert, error)
	// AckAlert acknowledges an open alert on behalf of by.
	AckAlert(ctx context.Context, id int64, by string) (lapse.Alert, error)
}

// monitorRoutes adds the activity and alert endpoints.
func (s *Server) monitorRoutes(mux handleFunc, v1 func(string, handler)) {
	mux.HandleFunc("POST /v1/activity", s.activity)
	v1("GET /v1/alerts", s.alerts)
	v1("POST /v1/alerts/{id}/ack", s.ackAlert)
}

// activity records activity reported by an integration, authenticated
// like posture reports.
func (s *Server) activity(w http.ResponseWriter, r *http.Request) {
	err := func() error {
		if s.Integrations == nil {
			return fmt.Errorf("no integrations are configured: %w", lapse.ErrUnauthenticated)
		}
		p, err := s.Integrations.Authenticate(r)
		if err != nil {
			return err
		}
		if s.Monitor == nil {
			return lapse.NotFoundf("activity monitoring is not enabled on this server")
		}
		var in monitor.ActivityReport
		if err := decode(w, r, &in); err != nil {
			return err
		}
		res, err := s.Monitor.Ingest(r.Context(), p.Name, in)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, api.ActivityResult{RequestID: res.RequestID, Outside: res.Outside, Seq: res.Seq})
		return nil
	}()
	if err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) alerts(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	if err := readsAll(p, "read alerts"); err != nil {
		return err
	}
	if s.Monitor == nil {
		return lapse.NotFoundf("activity monitoring is not enabled on this server")
	}
	q := r.URL.Query()
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	f := lapse.AlertFilter{State: q.Get("state"), Severity: q.Get("severity"), User: q.Get("user"), AfterID: after, Limit: limit}
	as, err := s.Monitor.Alerts(r.Context(), f)
	if err != nil {
		return err
	}
	page := api.AlertPage{Alerts: nonNil(as), Next: nextCursor(as, limit, func(a lapse.Alert) int64 { return a.ID })}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (s *Server) ackAlert(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	if err := adminOnly(p, "acknowledge alerts"); err != nil {
		return err
	}
	if s.Monitor == nil {
		return lapse.NotFoundf("activity monitoring is not enabled on this server")
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return lapse.Invalidf("alert id: want a positive whole number, got %q", r.PathValue("id"))
	}
	if err := decodeOptional(w, r, &struct{}{}); err != nil {
		return err
	}
	a, err := s.Monitor.AckAlert(r.Context(), id, p.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

// pageParams reads the cursor (after=) and page size (limit=, default
// 1000, at most 10000) of a listing.
func pageParams(r *http.Request) (after int64, limit int, err error) {
	if after, err = intParam(r, "after", 1<<62); err != nil {
		return 0, 0, err
	}
	n, err := intParam(r, "limit", 10000)
	if err != nil {
		return 0, 0, err
	}
	if n == 0 {
		n = 1000
	}
	return after, int(n), nil
}

// nextCursor is the cursor of the page after items: the key of the last
// item when the page is full, else 0 (no more).
func nextCursor[T any](items []T, limit int, key func(T) int64) int64 {
	if len(items) == 0 || len(items) < limit {
		return 0
	}
	return key(items[len(items)-1])
}

// nonNil returns s, or an empty slice for nil, so that JSON shows [].
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
