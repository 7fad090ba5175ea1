package webui

import (
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/broker"
)

// listLimit bounds the requests a list page shows; grantsLimit the
// grants of the admin view. The CLI lists everything.
const (
	listLimit   = 200
	grantsLimit = 1000
)

// stateFilters are the filters of the list of one's requests.
var stateFilters = map[string][]lapse.State{
	"open":  {lapse.StatePending, lapse.StateApproved, lapse.StateActive, lapse.StateRevoking},
	"ended": {lapse.StateEnded, lapse.StateDenied, lapse.StateCancelled, lapse.StateTimedOut, lapse.StateFailed},
	"all":   nil,
}

// flashes are the messages a redirect after an action may ask for; a
// query parameter picks one, so no text of the address reaches the page.
var flashes = map[string]string{
	"submitted":  "Request submitted.",
	"approved":   "Approval recorded.",
	"denied":     "Denied.",
	"cancelled":  "Request cancelled.",
	"released":   "Access released.",
	"revoked":    "Access revoked.",
	"extended":   "Access extended.",
	"asked":      "Extension requested; it waits for approval.",
	"signed-out": "Signed out.",
}

func flash(r *http.Request) string { return flashes[r.URL.Query().Get("done")] }

func (s *Server) myRequests(w http.ResponseWriter, r *http.Request, sess session) error {
	return s.requests(w, r, sess, &view{Title: "My requests", Nav: "mine", Path: "/"})
}

// allRequests lists everyone's requests, for admins and auditors.
func (s *Server) allRequests(w http.ResponseWriter, r *http.Request, sess session) error {
	if !sess.ReadsAll() {
		return lapse.Forbiddenf("only admins and auditors see everyone's requests")
	}
	return s.requests(w, r, sess, &view{Title: "All requests", Nav: "all", Path: "/admin/requests"})
}

// requests renders a list of requests filtered by state: one's own, or,
// on the page of everyone's, all that sess may read.
func (s *Server) requests(w http.ResponseWriter, r *http.Request, sess session, v *view) error {
	filter := r.URL.Query().Get("state")
	if filter == "" {
		filter = "open"
	}
	states, ok := stateFilters[filter]
	if !ok {
		return lapse.Invalidf("state: want open, ended or all, got %q", filter)
	}
	rs, err := s.cfg.Broker.List(r.Context(), sess.Principal, broker.ListInput{Mine: v.Nav == "mine", States: states, Limit: listLimit})
	if err != nil {
		return err
	}
	v.Session, v.Requests, v.Filter, v.Flash, v.Truncated = sess, rs, filter, flash(r), len(rs) == listLimit
	s.render(w, r, http.StatusOK, "requests", v)
	return nil
}

func (s *Server) newRequestView(sess session, f requestForm) *view {
	return &view{Title: "New request", Nav: "new", Session: sess, Resources: s.cfg.Broker.Resources(), Form: f, template: "new"}
}

func (s *Server) newRequest(w http.ResponseWriter, r *http.Request, sess session) error {
	s.render(w, r, http.StatusOK, "new", s.newRequestView(sess, requestForm{Duration: "1h"}))
	return nil
}

// submit asks for access. Credentials of access granted at once are shown
// on the page this POST returns, and nowhere else.
func (s *Server) submit(w http.ResponseWriter, r *http.Request, sess session) error {
	f := requestForm{
		Target: r.PostForm.Get("target"), Duration: strings.TrimSpace(r.PostForm.Get("duration")),
		Reason: r.PostForm.Get("reason"), Ticket: r.PostForm.Get("ticket"),
		Device: strings.TrimSpace(r.PostForm.Get("device")), SSHKey: strings.TrimSpace(r.PostForm.Get("ssh_public_key")),
	}
	v := s.newRequestView(sess, f)
	err := func() error {
		res, role, ok := strings.Cut(f.Target, "/")
		if !ok || res == "" || role == "" {
			return lapse.Invalidf("choose a resource and role")
		}
		d, err := s.duration(f.Duration)
		if err != nil {
			return err
		}
		in := broker.SubmitInput{Resource: res, Role: role, Duration: d, Reason: f.Reason, Ticket: f.Ticket,
			Device: f.Device, ClientIP: s.clientIP(r)}
		if f.SSHKey != "" {
			in.Inputs = map[string]string{"ssh_public_key": f.SSHKey}
		}
		out, err := s.cfg.Broker.Submit(r.Context(), sess.Principal, in)
		if err != nil && out.Request.ID == "" {
			return err
		}
		if err != nil {
			// Stored; provisioning did not finish and the scheduler retries.
			s.cfg.Logger.Warn("provisioning after submit", "request", out.Request.ID, "err", err)
		}
		if out.Credentials == nil {
			http.Redirect(w, r, "/requests/"+out.Request.ID+"?done=submitted", http.StatusSeeOther)
			return nil
		}
		return s.renderDetail(w, r, sess, out.Request.ID, &view{Flash: "Access granted.", Credentials: out.Credentials})
	}()
	if err != nil {
		s.fail(w, r, sess, err, v)
	}
	return nil
}

func (s *Server) duration(v string) (d time.Duration, err error) {
	if v == "" {
		return 0, lapse.Invalidf("a duration is required (e.g. 1h)")
	}
	if d, err = s.cfg.ParseDuration(v); err != nil {
		return 0, lapse.Invalidf("duration: cannot parse %q; write it as 30m, 4h or 1d", v)
	}
	if d <= 0 {
		return 0, lapse.Invalidf("duration must be positive, got %s", v)
	}
	return d, nil
}

func (s *Server) clientIP(r *http.Request) string {
	if s.cfg.ClientIP != nil {
		return s.cfg.ClientIP(r)
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return ap.Addr().Unmap().String()
}

func (s *Server) detail(w http.ResponseWriter, r *http.Request, sess session) error {
	return s.renderDetail(w, r, sess, r.PathValue("id"), &view{Flash: flash(r)})
}

// detailView fills v with request id and its timeline.
func (s *Server) detailView(r *http.Request, sess session, id string, v *view) error {
	q, err := s.cfg.Broker.Get(r.Context(), sess.Principal, id)
	if err != nil {
		return err
	}
	evs, err := s.cfg.Broker.Timeline(r.Context(), sess.Principal, id)
	if err != nil {
		return err
	}
	v.Title, v.Session, v.Request, v.template = "Request "+q.ID, sess, &q, "detail"
	v.CanDecide = s.cfg.Broker.MayDecide(sess.Principal, q)
	v.Timeline = make([]event, len(evs))
	for i, e := range evs {
		v.Timeline[i] = eventOf(e)
	}
	return nil
}

// renderDetail shows request id. A page rendered by a POST (credentials,
// say) replaces its address with the request's, so that a reload reads
// the request again and does not repeat the action.
func (s *Server) renderDetail(w http.ResponseWriter, r *http.Request, sess session, id string, v *view) error {
	if err := s.detailView(r, sess, id, v); err != nil {
		return err
	}
	if r.Method == http.MethodPost {
		v.ReplaceURL = "/requests/" + v.Request.ID
	}
	s.render(w, r, http.StatusOK, "detail", v)
	return nil
}

// act runs an action on a request from its forms. On success it redirects
// to where the form came from; on failure it shows that page again with
// the error, and nothing changed.
func (s *Server) act(w http.ResponseWriter, r *http.Request, sess session) error {
	id, action := r.PathValue("id"), r.PathValue("action")
	b, p, ctx := s.cfg.Broker, sess.Principal, r.Context()
	back := "/requests/" + id
	switch r.PostForm.Get("from") {
	case "approvals":
		back = "/approvals"
	case "grants":
		back = "/admin/grants"
	}
	var res broker.Result
	var creds *lapse.Credentials
	var err error
	done := map[string]string{"approve": "approved", "deny": "denied", "cancel": "cancelled", "release": "released",
		"revoke": "revoked", "extend": "extended"}[action]
	switch action {
	case "approve":
		res, err = b.Approve(ctx, p, id, r.PostForm.Get("comment"))
		if err != nil && res.Request.ID != "" {
			// Approved; provisioning did not finish and the scheduler retries.
			s.cfg.Logger.Warn("provisioning after approval", "request", id, "err", err)
			err = nil
		}
	case "deny":
		_, err = b.Deny(ctx, p, id, r.PostForm.Get("reason"))
	case "cancel":
		_, err = b.Cancel(ctx, p, id)
	case "release":
		_, err = b.Release(ctx, p, id)
	case "revoke":
		_, err = b.Revoke(ctx, p, id, r.PostForm.Get("reason"))
	case "extend":
		var d time.Duration
		if d, err = s.duration(strings.TrimSpace(r.PostForm.Get("duration"))); err == nil {
			res, err = b.Extend(ctx, p, id, d, r.PostForm.Get("reason"))
			creds = res.Credentials
			if err == nil && res.Request.Extension != nil {
				done = "asked"
			}
		}
	case "credentials":
		if creds, err = b.TakeCredentials(ctx, p, id); err == nil {
			return s.renderDetail(w, r, sess, id, &view{Credentials: creds})
		}
	default:
		s.notFound(w, r)
		return nil
	}
	if err != nil {
		s.fail(w, r, sess, err, s.backView(r, sess, back, id))
		return nil
	}
	if creds != nil {
		return s.renderDetail(w, r, sess, id, &view{Flash: "Extended.", Credentials: creds})
	}
	http.Redirect(w, r, back+"?done="+done, http.StatusSeeOther)
	return nil
}

// backView is the page a refused action shows its error on: the page its
// form came from, or an error page when that cannot be read either.
func (s *Server) backView(r *http.Request, sess session, back, id string) *view {
	switch back {
	case "/approvals":
		if v, err := s.approvalsView(r, sess); err == nil {
			return v
		}
	case "/admin/grants":
		if v, err := s.grantsView(r, sess); err == nil {
			return v
		}
	default:
		v := &view{}
		if s.detailView(r, sess, id, v) == nil {
			return v
		}
	}
	return nil
}

func (s *Server) approvalsView(r *http.Request, sess session) (*view, error) {
	rs, err := s.cfg.Broker.List(r.Context(), sess.Principal, broker.ListInput{ToApprove: true, Limit: listLimit})
	if err != nil {
		return nil, err
	}
	return &view{Title: "To approve", Nav: "approvals", Session: sess, Requests: rs, template: "approvals", Truncated: len(rs) == listLimit}, nil
}

// grantsView lists every grant that is or is about to be active: for
// admins, who may revoke them, and auditors, who only read.
func (s *Server) grantsView(r *http.Request, sess session) (*view, error) {
	if !sess.ReadsAll() {
		return nil, lapse.Forbiddenf("only admins and auditors see every active grant")
	}
	rs, err := s.cfg.Broker.List(r.Context(), sess.Principal, broker.ListInput{
		States: []lapse.State{lapse.StateApproved, lapse.StateActive, lapse.StateRevoking}, Limit: grantsLimit})
	if err != nil {
		return nil, err
	}
	return &view{Title: "Active grants", Nav: "grants", Session: sess, Requests: rs, template: "grants", Truncated: len(rs) == grantsLimit}, nil
}

// list serves a list page that forms redirect back to: the page build
// makes, with the message of the action done.
func (s *Server) list(build func(*http.Request, session) (*view, error)) handler {
	return func(w http.ResponseWriter, r *http.Request, sess session) error {
		v, err := build(r, sess)
		if err != nil {
			return err
		}
		v.Flash = flash(r)
		s.render(w, r, http.StatusOK, v.template, v)
		return nil
	}
}
