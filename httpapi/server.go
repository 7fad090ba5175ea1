package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/auditlog"
	"github.com/lapse-access/lapse/broker"
	"github.com/lapse-access/lapse/identity"
)

// MaxBody is the largest request body accepted.
const MaxBody = 1 << 20

// Authenticator turns a request's credentials into a principal, or returns
// an error matching [lapse.ErrUnauthenticated].
type Authenticator interface {
	Authenticate(r *http.Request) (lapse.Principal, error)
}

// TokenVerifier verifies Lapse-issued access tokens for /v1/check.
type TokenVerifier interface {
	// VerifyToken returns the grant id (jti), user, resource and role of a
	// validly signed, unexpired token.
	VerifyToken(token string) (id, user, resource, role string, err error)
	// JWKS returns the JSON Web Key Set of the verification keys.
	JWKS() []byte
}

// SSHAuthority is an SSH certificate authority whose public key and key
// revocation list servers fetch.
type SSHAuthority interface {
	Name() string
	// CAPublicKey is the CA key in authorized_keys format, for sshd's
	// TrustedUserCAKeys.
	CAPublicKey() []byte
	// KRL is the OpenSSH key revocation list, for sshd's RevokedKeys.
	KRL(ctx context.Context) ([]byte, error)
}

// Server is the HTTP API.
type Server struct {
	// SSH are the SSH certificate authorities, by connector.
	SSH []SSHAuthority
	// Integrations authenticates device management integrations, which may
	// only report device posture. Nil refuses every report.
	Integrations Authenticator
	// ClientIP, if set, finds a request's client address (behind trusted
	// proxies); by default it is the connection's peer.
	ClientIP func(r *http.Request) string
	// Audit, if set, serves the audit log's checkpoints, verification,
	// export, proofs, evidence and reports.
	Audit *auditlog.Log
	// Metrics, if set, is served at /metrics.
	Metrics http.Handler
	// Monitor, if set, serves activity reports and alerts.
	Monitor Monitor
	Broker  *broker.Broker
	Auth    Authenticator
	// Identity, if set, serves sign-in (/auth/...), sessions and service
	// accounts.
	Identity *identity.Service
	Tokens   TokenVerifier
	Logger   *slog.Logger
	// Ready reports whether the server can serve; nil means always.
	Ready func(ctx context.Context) error
	// ParseDuration parses durations in bodies; time.ParseDuration if nil.
	ParseDuration func(string) (time.Duration, error)
	// UI, if set, serves every path that no API route claims: the web UI.
	UI http.Handler
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	if s.Logger == nil {
		s.Logger = slog.Default().With("system", "http")
	}
	if s.ParseDuration == nil {
		s.ParseDuration = time.ParseDuration
	}
	mux := http.NewServeMux()
	s.register(mux.Handle)
	return mux
}

// Routes returns the patterns of the routes that [Server.Handler] serves,
// with this configuration (the audit, monitor and identity routes only
// when those are set). Tests walk it to check that every route has a rule
// for who may call it.
func (s *Server) Routes() []string {
	var out []string
	s.register(func(pattern string, _ http.Handler) { out = append(out, pattern) })
	return out
}

// register adds every route with handle.
func (s *Server) register(handle func(pattern string, h http.Handler)) {
	mux := handleFunc(handle)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.Metrics != nil {
		handle("GET /metrics", s.Metrics)
	}
	if s.Tokens != nil {
		mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "public, max-age=300")
			_, _ = w.Write(s.Tokens.JWKS())
		})
	}
	v1 := func(pattern string, h handler) {
		mux.HandleFunc(pattern, s.authed(h))
	}
	v1("POST /v1/requests", s.submit)
	v1("GET /v1/requests", s.list)
	v1("GET /v1/requests/{id}", s.get)
	v1("POST /v1/requests/{id}/approve", s.approve)
	v1("POST /v1/requests/{id}/deny", s.deny)
	v1("POST /v1/requests/{id}/cancel", s.cancel)
	v1("POST /v1/requests/{id}/release", s.release)
	v1("POST /v1/requests/{id}/revoke", s.revoke)
	v1("POST /v1/requests/{id}/extend", s.extend)
	v1("POST /v1/requests/{id}/credentials", s.credentials)
	v1("POST /v1/check", s.check)
	v1("GET /v1/audit", s.audit)
	s.auditRoutes(v1)
	v1("GET /v1/resources", s.resources)
	v1("GET /v1/whoami", s.whoami)
	v1("GET /v1/ssh/ca.pub", s.sshCA)
	mux.HandleFunc("POST /v1/devices/{id}/posture", s.posture)
	v1("GET /v1/ssh/krl", s.sshKRL)
	s.monitorRoutes(mux, v1)
	if s.UI != nil {
		handle("/", s.UI)
	}
	s.identityRoutes(mux, v1)
	mux.HandleFunc("/v1/", s.authed(func(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
		return lapse.NotFoundf("no such endpoint: %s %s", r.Method, r.URL.Path)
	}))
}

// handleFunc adapts a Handle function to handler functions.
type handleFunc func(pattern string, h http.Handler)

// HandleFunc registers h for pattern.
func (f handleFunc) HandleFunc(pattern string, h http.HandlerFunc) { f(pattern, h) }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.Ready != nil {
		if err := s.Ready(r.Context()); err != nil {
			s.Logger.Warn("not ready", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) authed(h func(w http.ResponseWriter, r *http.Request, p lapse.Principal) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.Auth.Authenticate(r)
		if err == nil {
			err = h(w, r, p)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// tooLarge is the error of a body over MaxBody.
var tooLarge = errors.New("too large")

// errEmptyBody is the error of a request without a body.
var errEmptyBody = &emptyBodyError{}

type emptyBodyError struct{}

func (*emptyBodyError) Error() string { return "request body is empty; send a JSON object" }
func (*emptyBodyError) Unwrap() error { return lapse.ErrInvalid }

// Status returns the HTTP status and the API error code of err's kind:
// 400 for bad input, 401 (with code "step_up_required" when a fresher
// second factor is needed), 403, 404, 409 for a refused transition or a
// concurrent change, 410, 413, and 500 with code "internal" for anything
// else. It is the one place where error kinds become statuses; the web UI
// uses it too.
func Status(err error) (status int, code string) {
	var su *lapse.StepUpError
	switch {
	case errors.As(err, &su):
		return http.StatusUnauthorized, "step_up_required"
	case errors.Is(err, tooLarge):
		return http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, lapse.ErrInvalid):
		return http.StatusBadRequest, "bad_request"
	case errors.Is(err, lapse.ErrUnauthenticated):
		return http.StatusUnauthorized, "unauthenticated"
	case errors.Is(err, lapse.ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, lapse.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, lapse.ErrConflict):
		return http.StatusConflict, "conflict"
	case errors.Is(err, lapse.ErrGone):
		return http.StatusGone, "gone"
	}
	return http.StatusInternalServerError, "internal"
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := Status(err)
	var body api.ErrorBody
	var su *lapse.StepUpError
	switch {
	case errors.As(err, &su):
		body.MaxAge = int64(su.MaxAge / time.Second)
		body.LoginURL = identity.LoginURL("", su.MaxAge)
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="lapse", error="insufficient_user_authentication", max_age="%d"`, body.MaxAge))
	case status == http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="lapse"`)
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		s.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal error; the server log has details"
	}
	body.Code, body.Message = code, msg
	writeJSON(w, status, api.Error{Error: body})
}

// decode reads a JSON body strictly into v: at most MaxBody bytes, no
// unknown fields, nothing after the object.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, MaxBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return fmt.Errorf("request body is larger than %d bytes: %w", MaxBody, tooLarge)
		case errors.Is(err, io.EOF):
			return errEmptyBody
		case errors.As(err, &se):
			return lapse.Invalidf("malformed JSON at byte offset %d: %v", se.Offset, se)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return lapse.Invalidf("malformed JSON: the body ends early")
		case errors.As(err, &te):
			return lapse.Invalidf("field %q must be %s, not %s (byte offset %d)", te.Field, te.Type, te.Value, te.Offset)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return lapse.Invalidf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return lapse.Invalidf("malformed JSON: %v", err)
	}
	if dec.More() {
		return lapse.Invalidf("malformed JSON: unexpected data after the object at byte offset %d", dec.InputOffset())
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if errors.As(err, new(*http.MaxBytesError)) {
			return fmt.Errorf("request body is larger than %d bytes: %w", MaxBody, tooLarge)
		}
		return lapse.Invalidf("malformed JSON: unexpected data after the object at byte offset %d", dec.InputOffset())
	}
	return nil
}

// decodeOptional is decode for bodies that may be empty.
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	if err := decode(w, r, v); err != nil && !errors.Is(err, errEmptyBody) {
		return err
	}
	return nil
}

func (s *Server) duration(name, v string) (time.Duration, error) {
	if v == "" {
		return 0, lapse.Invalidf("%s is required (e.g. 1h)", name)
	}
	d, err := s.ParseDuration(v)
	if err != nil {
		return 0, lapse.Invalidf("%s: cannot parse %q as a duration (e.g. 30m, 4h)", name, v)
	}
	if d <= 0 {
		return 0, lapse.Invalidf("%s must be positive, got %s", name, v)
	}
	return d, nil
}

func respond(w http.ResponseWriter, status int, res broker.Result) error {
	out := api.FromRequest(res.Request)
	out.Credentials = res.Credentials
	out.Decision = api.FromDecision(res.Decision)
	writeJSON(w, status, out)
	return nil
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	var in api.SubmitRequest
	if err := decode(w, r, &in); err != nil {
		return err
	}
	if in.Resource == "" {
		return lapse.Invalidf("resource is required")
	}
	if in.Role == "" {
		return lapse.Invalidf("role is required")
	}
	d, err := s.duration("duration", in.Duration)
	if err != nil {
		return err
	}
	var start time.Time
	if in.StartAt != "" {
		if start, err = time.Parse(time.RFC3339, in.StartAt); err != nil {
			return lapse.Invalidf("start_at: want an RFC 3339 time such as 2026-01-02T15:04:05Z, got %q", in.StartAt)
		}
	}
	res, err := s.Broker.Submit(r.Context(), p, broker.SubmitInput{
		Resource: in.Resource, Role: in.Role, Duration: d, Reason: in.Reason, Ticket: in.Ticket, StartAt: start, Inputs: in.Inputs, ClientIP: s.clientIP(r), Device: in.Device})
	if err != nil && res.Request.ID == "" {
		return err
	}
	if err != nil {
		// Stored, but provisioning did not finish; the scheduler retries.
		s.Logger.Warn("provisioning after submit", "request", res.Request.ID, "err", err)
	}
	return respond(w, http.StatusCreated, res)
}

var stateGroups = map[string][]lapse.State{
	"pending": {lapse.StatePending},
	"active":  {lapse.StateApproved, lapse.StateActive, lapse.StateRevoking},
	"ended":   {lapse.StateEnded, lapse.StateDenied, lapse.StateCancelled, lapse.StateTimedOut, lapse.StateFailed},
	"open":    {lapse.StatePending, lapse.StateApproved, lapse.StateActive, lapse.StateRevoking},
	"all":     nil,
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, lapse.Invalidf("%s: want true or false, got %q", name, v)
	}
	return b, nil
}

func intParam(r *http.Request, name string, max int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > max {
		return 0, lapse.Invalidf("%s: want a whole number from 0 to %d, got %q", name, max, v)
	}
	return n, nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	in := broker.ListInput{}
	state := r.URL.Query().Get("state")
	if state == "" {
		state = "open"
	}
	if g, ok := stateGroups[state]; ok {
		in.States = g
	} else if lapse.State(state).Valid() {
		in.States = []lapse.State{lapse.State(state)}
	} else {
		return lapse.Invalidf("state: want pending, active, ended, all or a state name, got %q", state)
	}
	var err error
	if in.Mine, err = boolParam(r, "mine"); err != nil {
		return err
	}
	if in.ToApprove, err = boolParam(r, "to_approve"); err != nil {
		return err
	}
	limit, err := intParam(r, "limit", 10000)
	if err != nil {
		return err
	}
	in.Limit = int(limit)
	rs, err := s.Broker.List(r.Context(), p, in)
	if err != nil {
		return err
	}
	out := make([]api.Request, len(rs))
	for i, q := range rs {
		out[i] = api.FromRequest(q)
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": out})
	return nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	q, err := s.Broker.Get(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.FromRequest(q))
	return nil
}

func (s *Server) approve(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	var in api.CommentBody
	if err := decodeOptional(w, r, &in); err != nil {
		return err
	}
	res, err := s.Broker.Approve(r.Context(), p, r.PathValue("id"), in.Comment)
	if err != nil && res.Request.ID == "" {
		return err
	}
	return respond(w, http.StatusOK, res)
}

func (s *Server) deny(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	var in api.ReasonBody
	if err := decode(w, r, &in); err != nil {
		return err
	}
	res, err := s.Broker.Deny(r.Context(), p, r.PathValue("id"), in.Reason)
	if err != nil {
		return err
	}
	return respond(w, http.StatusOK, res)
}

func (s *Server) cancel(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	if err := decodeOptional(w, r, &struct{}{}); err != nil {
		return err
	}
	res, err := s.Broker.Cancel(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	return respond(w, http.StatusOK, res)
}

func (s *Server) release(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	if err := decodeOptional(w, r, &struct{}{}); err != nil {
		return err
	}
	res, err := s.Broker.Release(r.Context(), p, r.PathValue("id"))
	if err != nil && res.Request.ID == "" {
		return err
	}
	return respond(w, http.StatusOK, res)
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	var in api.ReasonBody
	if err := decode(w, r, &in); err != nil {
		return err
	}
	res, err := s.Broker.Revoke(r.Context(), p, r.PathValue("id"), in.Reason)
	if err != nil && res.Request.ID == "" {
		return err
	}
	return respond(w, http.StatusOK, res)
}

func (s *Server) extend(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	var in api.ExtendBody
	if err := decode(w, r, &in); err != nil {
		return err
	}
	d, err := s.duration("duration", in.Duration)
	if err != nil {
		return err
	}
	res, err := s.Broker.Extend(r.Context(), p, r.PathValue("id"), d, in.Reason)
	if err != nil {
		return err
	}
	return respond(w, http.StatusOK, res)
}

func (s *Server) credentials(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	c, err := s.Broker.TakeCredentials(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

func (s *Server) check(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	var in api.CheckRequest
	if err := decode(w, r, &in); err != nil {
		return err
	}
	if in.Token != "" {
		if in.User != "" || in.Resource != "" || in.Role != "" {
			return lapse.Invalidf("send either a token or user, resource and role, not both")
		}
		return s.checkToken(w, r, in.Token)
	}
	if in.User == "" || in.Resource == "" || in.Role == "" {
		return lapse.Invalidf("user, resource and role are required (or a token)")
	}
	if in.User != p.Name && !p.ReadsAll() {
		return lapse.Forbiddenf("only admins and auditors may check another user's access")
	}
	q, ok, err := s.Broker.Check(r.Context(), in.User, in.Resource, in.Role)
	if err != nil {
		return err
	}
	out := api.CheckResponse{Active: ok, User: in.User, Resource: in.Resource, Role: in.Role}
	if ok {
		out.RequestID = q.ID
		out.ExpiresAt = &q.ExpiresAt
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) checkToken(w http.ResponseWriter, r *http.Request, token string) error {
	if s.Tokens == nil {
		return lapse.Invalidf("this server issues no tokens")
	}
	id, user, resource, role, err := s.Tokens.VerifyToken(token)
	if err != nil {
		writeJSON(w, http.StatusOK, api.CheckResponse{Reason: "token refused: " + err.Error()})
		return nil
	}
	q, ok, err := s.Broker.CheckGrant(r.Context(), id)
	if err != nil {
		return err
	}
	out := api.CheckResponse{Active: ok, RequestID: id, User: user, Resource: resource, Role: role}
	switch {
	case !ok && q.ID == "":
		out.Active, out.Reason = false, "token refused: unknown grant"
	case q.User != user || q.Resource != resource || q.Role != role:
		out.Active, out.Reason = false, "token refused: does not match its grant"
	case !ok:
		out.Reason = fmt.Sprintf("token refused: grant is %s", q.State)
	default:
		out.ExpiresAt = &q.ExpiresAt
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	q := r.URL.Query()
	f := lapse.AuditFilter{User: q.Get("user"), Resource: q.Get("resource"), RequestID: q.Get("request"), Type: q.Get("type")}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return lapse.Invalidf("%s: want an RFC 3339 time, got %q", name, v)
			}
			*dst = t
		}
	}
	after, limit, err := pageParams(r)
	if err != nil {
		return err
	}
	f.AfterSeq, f.Limit = after, limit
	evs, err := s.Broker.Audit(r.Context(), p, f)
	if err != nil {
		return err
	}
	page := api.AuditPage{Events: nonNil(evs), Next: nextCursor(evs, limit, func(e lapse.AuditEvent) int64 { return e.Seq })}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	if err := readsAll(p, "verify the audit log"); err != nil {
		return err
	}
	n, head, err := s.Broker.VerifyAudit(r.Context())
	out := api.Verify{OK: err == nil, Records: n, Head: head}
	var ce *lapse.ChainError
	switch {
	case errors.As(err, &ce):
		out.Error, out.BadRecord = ce.Error(), ce.Seq
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) resources(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	var out []api.Resource
	for _, res := range s.Broker.Resources() {
		a := api.Resource{Name: res.Name, Connector: res.Connector, Environment: res.Environment, Tags: res.Tags}
		for _, ro := range res.Roles {
			a.Roles = append(a.Roles, api.Role{Name: ro.Name, MaxDuration: ro.MaxDuration.String(), Approvals: ro.Approvals,
				Approvers: ro.Approvers, Requesters: ro.Requesters})
		}
		out = append(out, a)
	}
	writeJSON(w, http.StatusOK, map[string]any{"resources": out})
	return nil
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	groups := slices.Clone(p.Groups)
	if groups == nil {
		groups = []string{}
	}
	out := api.Whoami{Name: p.Name, Groups: groups, Admin: p.Admin, Auditor: p.Auditor, Service: p.Service, Session: p.Session,
		MFA: p.MFA.Present == lapse.FlagTrue}
	if out.MFA && !p.MFA.At.IsZero() && s.Broker != nil {
		age := int64(s.Broker.Now().Sub(p.MFA.At) / time.Second)
		out.MFAAgeSeconds = &age
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// sshAuthority returns the authority named by ?connector=, or the only one.
func (s *Server) sshAuthority(r *http.Request) (SSHAuthority, error) {
	name := r.URL.Query().Get("connector")
	if name == "" {
		switch len(s.SSH) {
		case 0:
			return nil, lapse.NotFoundf("this server has no ssh connector")
		case 1:
			return s.SSH[0], nil
		}
		names := make([]string, len(s.SSH))
		for i, a := range s.SSH {
			names[i] = a.Name()
		}
		return nil, lapse.Invalidf("several ssh connectors (%s): name one with ?connector=", strings.Join(names, ", "))
	}
	for _, a := range s.SSH {
		if a.Name() == name {
			return a, nil
		}
	}
	return nil, lapse.NotFoundf("no ssh connector %q", name)
}

func (s *Server) sshCA(w http.ResponseWriter, r *http.Request, _ lapse.Principal) error {
	a, err := s.sshAuthority(r)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(a.CAPublicKey())
	return nil
}

func (s *Server) sshKRL(w http.ResponseWriter, r *http.Request, _ lapse.Principal) error {
	a, err := s.sshAuthority(r)
	if err != nil {
		return err
	}
	krl, err := a.KRL(r.Context())
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(krl)
	return nil
}

// PostureReport is the body of POST /v1/devices/{id}/posture.
type PostureReport struct {
	Owner         string `json:"owner"`
	Managed       *bool  `json:"managed"`
	DiskEncrypted *bool  `json:"disk_encrypted"`
	OSUpToDate    *bool  `json:"os_up_to_date"`
	// ReportedAt is when the integration observed the posture (RFC 3339);
	// default now.
	ReportedAt string `json:"reported_at"`
}

func (s *Server) posture(w http.ResponseWriter, r *http.Request) {
	err := func() error {
		if s.Integrations == nil {
			return fmt.Errorf("no integrations are configured: %w", lapse.ErrUnauthenticated)
		}
		p, err := s.Integrations.Authenticate(r)
		if err != nil {
			return err
		}
		var in PostureReport
		if err := decode(w, r, &in); err != nil {
			return err
		}
		if in.Managed == nil || in.DiskEncrypted == nil || in.OSUpToDate == nil {
			return lapse.Invalidf("managed, disk_encrypted and os_up_to_date are required")
		}
		d := lapse.Device{ID: r.PathValue("id"), Owner: in.Owner, Managed: *in.Managed, DiskEncrypted: *in.DiskEncrypted, OSUpToDate: *in.OSUpToDate}
		if in.ReportedAt != "" {
			t, err := time.Parse(time.RFC3339, in.ReportedAt)
			if err != nil {
				return lapse.Invalidf("reported_at: want an RFC 3339 time, got %q", in.ReportedAt)
			}
			d.ReportedAt = t
		}
		d, revoked, err := s.Broker.ReportPosture(r.Context(), p.Name, d)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"device": d, "grants_revoked": revoked})
		return nil
	}()
	if err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) clientIP(r *http.Request) string {
	if s.ClientIP != nil {
		return s.ClientIP(r)
	}
	return peerIP(r)
}

// peerIP is the address of the connection's peer.
func peerIP(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	return ap.Addr().Unmap().String()
}

// StaticTokens authenticates bearer tokens against SHA-256 hashes.
type StaticTokens struct {
	byHash map[[32]byte]lapse.Principal
}

// NewStaticTokens returns an authenticator for the given hashes.
func NewStaticTokens(users map[[32]byte]lapse.Principal) *StaticTokens {
	return &StaticTokens{byHash: users}
}

// Authenticate implements [Authenticator].
func (s *StaticTokens) Authenticate(r *http.Request) (lapse.Principal, error) {
	tok, err := identity.BearerToken(r)
	if err != nil {
		return lapse.Principal{}, err
	}
	p, found := s.byHash[sha256.Sum256([]byte(tok))]
	if !found {
		return lapse.Principal{}, fmt.Errorf("unknown token: %w", lapse.ErrUnauthenticated)
	}
	return p, nil
}
