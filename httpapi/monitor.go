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
func (s *Server) monitorRoutes(mux *http.ServeMux, v1 func(string, func(http.ResponseWriter, *http.Request, lapse.Principal) error)) {
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
	if !p.Admin {
		return lapse.Forbiddenf("only admins may read alerts")
	}
	if s.Monitor == nil {
		return lapse.NotFoundf("activity monitoring is not enabled on this server")
	}
	q := r.URL.Query()
	after, err := intParam(r, "after", 1<<62)
	if err != nil {
		return err
	}
	limit, err := intParam(r, "limit", 10000)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = 1000
	}
	f := lapse.AlertFilter{State: q.Get("state"), Severity: q.Get("severity"), User: q.Get("user"), AfterID: after, Limit: int(limit)}
	as, err := s.Monitor.Alerts(r.Context(), f)
	if err != nil {
		return err
	}
	page := api.AlertPage{Alerts: as}
	if page.Alerts == nil {
		page.Alerts = []lapse.Alert{}
	}
	if len(as) == int(limit) {
		page.Next = as[len(as)-1].ID
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (s *Server) ackAlert(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	if !p.Admin {
		return lapse.Forbiddenf("only admins may acknowledge alerts")
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
