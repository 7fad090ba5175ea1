package auditlog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/lapse-access/lapse"
)

// EvidenceFormat is the first line of an evidence bundle's signed text.
const EvidenceFormat = "lapse-evidence/1"

// Policy audit event types, written when the policy set in force is loaded
// and when it changes; their data holds its "hash".
const (
	evPolicyLoaded  = "policy.loaded"
	evPolicyChanged = "policy.changed"
)

// An evidence bundle is a signed note (the signed-note format of
// transparency logs, signed with the checkpoint key) whose text is:
//
//	lapse-evidence/1
//	{"evidence": {...}}                               the summary, an Evidence
//	{"checkpoint": "<signed note>"}                   the checkpoint the proofs are against
//	{"record": {...}, "proof": {...}}                 each record, with its inclusion proof
//
// The records are the request's own and the one that put the policy set in
// force when it was made. Each record's hash, its inclusion in the signed
// checkpoint and the bundle's signature are checked offline by
// [VerifyEvidence].

// Evidence is the summary of a bundle: what happened to one request.
type Evidence struct {
	RequestID string           `json:"request_id"`
	Origin    string           `json:"origin"`
	CreatedAt time.Time        `json:"created_at"`
	Request   EvidenceRequest  `json:"request"`
	PolicySet *EvidencePolicy  `json:"policy_set,omitempty"`
	Decision  json.RawMessage  `json:"decision,omitempty"`
	Approvals []lapse.Approval `json:"approvals"`
	// Records lists the request's records by type: sequence numbers.
	Records map[string][]int64 `json:"records"`
}

// EvidenceRequest is the request as it stands when the bundle is made.
type EvidenceRequest struct {
	User        string          `json:"user"`
	Resource    string          `json:"resource"`
	Role        string          `json:"role"`
	Reason      string          `json:"reason"`
	Ticket      string          `json:"ticket,omitempty"`
	State       lapse.State     `json:"state"`
	Duration    string          `json:"duration"`
	CreatedAt   time.Time       `json:"created_at"`
	ActivatedAt *time.Time      `json:"activated_at,omitempty"`
	ExpiresAt   *time.Time      `json:"expires_at,omitempty"`
	EndedAt     *time.Time      `json:"ended_at,omitempty"`
	EndReason   lapse.EndReason `json:"end_reason,omitempty"`
	EndedBy     string          `json:"ended_by,omitempty"`
}

// EvidencePolicy names the policy set in force when the request was made
// and the record that put it in force.
type EvidencePolicy struct {
	Hash   string `json:"hash"`
	Record int64  `json:"record"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// Evidence builds the signed evidence bundle of request id.
func (l *Log) Evidence(ctx context.Context, id string) ([]byte, error) {
	r, err := l.Store.GetRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	var evs []lapse.AuditEvent
	f := lapse.AuditFilter{RequestID: id, Limit: 1000}
	for {
		page, err := l.Store.ListAudit(ctx, f)
		if err != nil {
			return nil, err
		}
		evs = append(evs, page...)
		if len(page) < f.Limit {
			break
		}
		f.AfterSeq = page[len(page)-1].Seq
	}
	if len(evs) == 0 {
		return nil, lapse.NotFoundf("request %s has no audit records", id)
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	signer, err := l.Keys.Signer(ctx)
	if err != nil {
		return nil, err
	}
	ev := Evidence{
		RequestID: id, Origin: signer.Name(), CreatedAt: l.now(),
		Request: EvidenceRequest{
			User: r.User, Resource: r.Resource, Role: r.Role, Reason: r.Reason, Ticket: r.Ticket,
			State: r.State, Duration: r.Duration.String(), CreatedAt: r.CreatedAt.UTC(),
			ActivatedAt: timePtr(r.ActivatedAt), ExpiresAt: timePtr(r.ExpiresAt), EndedAt: timePtr(r.EndedAt),
			EndReason: r.EndReason, EndedBy: r.EndedBy,
		},
		Approvals: r.Approvals,
		Records:   map[string][]int64{},
	}
	if ev.Approvals == nil {
		ev.Approvals = []lapse.Approval{}
	}
	for _, e := range evs {
		ev.Records[e.Type] = append(ev.Records[e.Type], e.Seq)
		if e.Type == lapse.EvRequested && ev.Decision == nil {
			var d struct {
				Decision json.RawMessage `json:"decision"`
			}
			if json.Unmarshal(e.Data, &d) == nil {
				ev.Decision = d.Decision
			}
		}
	}
	// The policy set in force: the last load or change before the first
	// record of the request.
	pol, err := l.policyBefore(ctx, evs[0].Seq)
	if err != nil {
		return nil, err
	}
	if pol != nil {
		var d struct {
			Hash string `json:"hash"`
		}
		_ = json.Unmarshal(pol.Data, &d)
		ev.PolicySet = &EvidencePolicy{Hash: d.Hash, Record: pol.Seq}
		evs = append([]lapse.AuditEvent{*pol}, evs...)
	}
	seqs := make([]int64, len(evs))
	for i, e := range evs {
		seqs[i] = e.Seq
	}
	proofs, err := l.Proofs(ctx, seqs, cp.Size)
	if err != nil {
		return nil, err
	}
	var text bytes.Buffer
	text.WriteString(EvidenceFormat + "\n")
	sum, err := json.Marshal(exportLine{Evidence: &ev})
	if err != nil {
		return nil, err
	}
	text.Write(sum)
	text.WriteByte('\n')
	cpl, err := json.Marshal(exportLine{Checkpoint: string(cp.Note)})
	if err != nil {
		return nil, err
	}
	text.Write(cpl)
	text.WriteByte('\n')
	var buf []byte
	for i, e := range evs {
		if buf, err = AppendProofLine(buf[:0], e, &proofs[i], nil); err != nil {
			return nil, err
		}
		text.Write(buf)
		text.WriteByte('\n')
	}
	msg, err := note.Sign(&note.Note{Text: text.String()}, signer)
	if err != nil {
		return nil, fmt.Errorf("sign evidence: %w", err)
	}
	return msg, nil
}

// policyBefore returns the last policy record before seq, or nil.
func (l *Log) policyBefore(ctx context.Context, seq int64) (*lapse.AuditEvent, error) {
	var last *lapse.AuditEvent
	for _, typ := range []string{evPolicyLoaded, evPolicyChanged} {
		f := lapse.AuditFilter{Type: typ, Limit: 1000}
		for {
			page, err := l.Store.ListAudit(ctx, f)
			if err != nil {
				return nil, err
			}
			for i := range page {
				if page[i].Seq < seq && (last == nil || page[i].Seq > last.Seq) {
					last = &page[i]
				}
			}
			if len(page) < f.Limit || page[len(page)-1].Seq >= seq {
				break
			}
			f.AfterSeq = page[len(page)-1].Seq
		}
	}
	return last, nil
}

// EvidenceResult is what [VerifyEvidence] established.
type EvidenceResult struct {
	Evidence   Evidence
	Checkpoint CheckpointBody
	Records    []lapse.AuditEvent
}

// VerifyEvidence verifies an evidence bundle with key: the bundle's
// signature, the checkpoint's, and every record's hash and inclusion in
// the checkpoint's tree; every record must be the request's, or the one
// that put its policy set in force.
func VerifyEvidence(bundle []byte, key string) (EvidenceResult, error) {
	k, err := ParseVerifierKey(key)
	if err != nil {
		return EvidenceResult{}, err
	}
	n, err := note.Open(bundle, note.VerifierList(k))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return EvidenceResult{}, fmt.Errorf("evidence bundle is not signed by this key (%s): %w", k.Name(), err)
		}
		return EvidenceResult{}, fmt.Errorf("evidence bundle signature: %w", err)
	}
	sc := bufio.NewScanner(strings.NewReader(n.Text))
	sc.Buffer(make([]byte, 64<<10), maxLine)
	var (
		out  EvidenceResult
		line int
		cp   *CheckpointBody
		seen = map[int64]bool{}
	)
	for sc.Scan() {
		line++
		if line == 1 {
			if sc.Text() != EvidenceFormat {
				return out, lapse.Invalidf("not a Lapse evidence bundle (first line %q)", sc.Text())
			}
			continue
		}
		var l exportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return out, lapse.Invalidf("line %d: %v", line, err)
		}
		switch {
		case line == 2:
			if l.Evidence == nil {
				return out, lapse.Invalidf("line 2: no evidence summary")
			}
			out.Evidence = *l.Evidence
		case line == 3:
			c, err := OpenCheckpoint([]byte(l.Checkpoint), k)
			if err != nil {
				return out, &CheckpointError{Reason: err.Error()}
			}
			cp, out.Checkpoint = &c, c
		case l.Record != nil && l.Proof != nil:
			ev := l.Record.event()
			if l.Proof.Size != cp.Size {
				return out, &lapse.ChainError{Seq: ev.Seq, Reason: fmt.Sprintf("proved against a tree of size %d, the checkpoint is of %d", l.Proof.Size, cp.Size)}
			}
			if err := VerifyInclusion(ev, *l.Proof, cp.Root); err != nil {
				return out, err
			}
			policy := out.Evidence.PolicySet != nil && ev.Seq == out.Evidence.PolicySet.Record
			if ev.RequestID != out.Evidence.RequestID && !policy {
				return out, &lapse.ChainError{Seq: ev.Seq, Reason: fmt.Sprintf("the record is about request %q, not %q", ev.RequestID, out.Evidence.RequestID)}
			}
			seen[ev.Seq] = true
			out.Records = append(out.Records, ev)
		default:
			return out, lapse.Invalidf("line %d: not a record with its proof", line)
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read evidence: %w", err)
	}
	if cp == nil {
		return out, lapse.Invalidf("the bundle has no checkpoint")
	}
	for typ, seqs := range out.Evidence.Records {
		for _, s := range seqs {
			if !seen[s] {
				return out, &lapse.ChainError{Seq: s, Reason: fmt.Sprintf("the summary lists %s record %d, which the bundle does not hold", typ, s)}
			}
		}
	}
	if p := out.Evidence.PolicySet; p != nil && !seen[p.Record] {
		return out, &lapse.ChainError{Seq: p.Record, Reason: "the policy record is not in the bundle"}
	}
	slices.SortFunc(out.Records, func(a, b lapse.AuditEvent) int { return int(a.Seq - b.Seq) })
	return out, nil
}
