package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/auditlog"
	"github.com/lapse-access/lapse/report"
)

// Who may read what of the audit log: admins and auditors everything.
// Anyone signed in may read the latest checkpoint and the public key (they
// reveal the log's size and root hash, nothing of its content), the
// inclusion proof of a record about themselves, and the evidence bundle of
// their own request. Verifying, exporting and reports, which read every
// record, are for admins and auditors. Signing a checkpoint on demand
// changes the log's state: admins only.

type handler = func(w http.ResponseWriter, r *http.Request, p lapse.Principal) error

// auditRoutes registers the audit log's endpoints.
func (s *Server) auditRoutes(v1 func(pattern string, h handler)) {
	if s.Audit == nil {
		v1("GET /v1/audit/verify", s.verify)
		return
	}
	v1("GET /v1/audit/verify", s.verifyLog)
	v1("GET /v1/audit/checkpoint", s.checkpoint)
	v1("POST /v1/audit/checkpoint", s.signCheckpoint)
	v1("GET /v1/audit/key", s.auditKey)
	v1("GET /v1/audit/export", s.export)
	v1("GET /v1/audit/{seq}/proof", s.proof)
	v1("GET /v1/requests/{id}/evidence", s.evidence)
	v1("GET /v1/report", s.report)
}

// adminOnly refuses anyone but admins: the rule of every change that is
// not one's own.
func adminOnly(p lapse.Principal, what string) error {
	if !p.Admin {
		return lapse.Forbiddenf("only admins may %s", what)
	}
	return nil
}

// readsAll refuses anyone but admins and auditors: the rule of reading
// what is about everyone.
func readsAll(p lapse.Principal, what string) error {
	if !p.ReadsAll() {
		return lapse.Forbiddenf("only admins and auditors may %s", what)
	}
	return nil
}

func (s *Server) verifyLog(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	if err := readsAll(p, "verify the audit log"); err != nil {
		return err
	}
	res, err := s.Audit.Verify(r.Context())
	out := api.Verify{OK: err == nil, Records: res.Records, Head: res.Head, Root: res.Root,
		Checkpoints: res.Checkpoints, Signed: res.Signed}
	var ce *lapse.ChainError
	var cpe *auditlog.CheckpointError
	switch {
	case errors.As(err, &ce):
		out.Error, out.BadRecord = ce.Error(), ce.Seq
	case errors.As(err, &cpe):
		out.Error, out.BadCheckpoint = cpe.Error(), cpe.Size
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) writeCheckpoint(w http.ResponseWriter, r *http.Request, c lapse.Checkpoint) error {
	key, err := s.Audit.VerifierKey(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.Checkpoint{Size: c.Size, Root: c.Root, Time: c.Time.UTC(), Note: string(c.Note), Key: key})
	return nil
}

func (s *Server) checkpoint(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	c, err := s.Audit.Store.LatestCheckpoint(r.Context())
	if err != nil {
		return err
	}
	return s.writeCheckpoint(w, r, c)
}

func (s *Server) signCheckpoint(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	if err := adminOnly(p, "sign checkpoints"); err != nil {
		return err
	}
	c, err := s.Audit.Checkpoint(r.Context())
	if err != nil {
		return err
	}
	return s.writeCheckpoint(w, r, c)
}

func (s *Server) auditKey(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	key, err := s.Audit.VerifierKey(r.Context())
	if err != nil {
		return err
	}
	v, err := auditlog.ParseVerifierKey(key)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.AuditKey{Origin: v.Name(), Key: key})
	return nil
}

// timeParam parses an RFC 3339 time parameter; empty is the zero time.
func timeParam(r *http.Request, name string) (time.Time, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, lapse.Invalidf("%s: want an RFC 3339 time, got %q", name, v)
	}
	return t, nil
}

func (s *Server) export(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	if err := readsAll(p, "export the audit log"); err != nil {
		return err
	}
	since, err := timeParam(r, "since")
	if err != nil {
		return err
	}
	// Errors after the first byte cannot change the status: the export
	// then ends early, and its verification fails.
	w.Header().Set("Content-Type", "application/jsonl")
	w.Header().Set("Cache-Control", "no-store")
	ew := &firstWrite{w: w}
	if err := s.Audit.Export(r.Context(), ew, since); err != nil {
		if !ew.wrote {
			w.Header().Del("Content-Type")
			return err
		}
		s.Logger.Error("export cut short", "err", err)
	}
	return nil
}

// firstWrite records whether anything was written.
type firstWrite struct {
	w     http.ResponseWriter
	wrote bool
}

func (f *firstWrite) Write(b []byte) (int, error) {
	f.wrote = true
	return f.w.Write(b)
}

func (s *Server) proof(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	seq, err := strconv.ParseInt(r.PathValue("seq"), 10, 64)
	if err != nil || seq < 1 {
		return lapse.Invalidf("record: want a sequence number from 1, got %q", r.PathValue("seq"))
	}
	size, err := intParam(r, "size", 1<<62)
	if err != nil {
		return err
	}
	// Who may see the record is settled before any work: a proof reads
	// the log up to the checkpoint.
	evs, err := s.Audit.Store.ListAudit(r.Context(), lapse.AuditFilter{AfterSeq: seq - 1, Limit: 1})
	if err != nil {
		return err
	}
	if len(evs) == 0 || evs[0].Seq != seq || (!p.ReadsAll() && evs[0].User != p.Name) {
		// Not found rather than forbidden: whether a record exists is
		// itself not for everyone.
		return lapse.NotFoundf("audit record %d not found", seq)
	}
	var pr auditlog.ProvenRecord
	if size == 0 {
		pr, err = s.Audit.ProveRecord(r.Context(), seq)
	} else {
		pr, err = s.Audit.ProveRecordAt(r.Context(), seq, size)
	}
	if err != nil {
		return err
	}
	b, err := pr.Encode()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n'))
	return nil
}

func (s *Server) evidence(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	// Get applies who may see the request: the requester, its approvers,
	// admins and auditors. The bundle is for the requester, admins and
	// auditors.
	req, err := s.Broker.Get(r.Context(), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !p.ReadsAll() && req.User != p.Name {
		return lapse.Forbiddenf("only the requester, admins and auditors may take the evidence of request %s", req.ID)
	}
	b, err := s.Audit.Evidence(r.Context(), req.ID)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
	return nil
}

func (s *Server) report(w http.ResponseWriter, r *http.Request, p lapse.Principal) error {
	if err := readsAll(p, "read access reports"); err != nil {
		return err
	}
	since, err := timeParam(r, "since")
	if err != nil {
		return err
	}
	until, err := timeParam(r, "until")
	if err != nil {
		return err
	}
	if since.IsZero() {
		return lapse.Invalidf("since is required (an RFC 3339 time)")
	}
	if until.IsZero() {
		until = time.Now()
		if s.Audit.Clock != nil {
			until = s.Audit.Clock.Now()
		}
	}
	if !until.After(since) {
		return lapse.Invalidf("until must be after since")
	}
	rep, err := report.Build(r.Context(), s.Audit.Store, since, until)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}
