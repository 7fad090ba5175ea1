package lapse

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Audit event types. Each state change writes exactly one event, in the same
// transaction as the change.
const (
	EvRequested        = "request.created"
	EvApproved         = "request.approved"
	EvApprovalAdded    = "request.approval_added"
	EvDenied           = "request.denied"
	EvCancelled        = "request.cancelled"
	EvTimedOut         = "request.timed_out"
	EvProvisioned      = "grant.provisioned"
	EvProvisionFailed  = "grant.provision_failed"
	EvFailed           = "grant.failed"
	EvExpired          = "grant.expired"
	EvReleased         = "grant.released"
	EvRevoked          = "grant.revoked"
	EvRevokeFailed     = "grant.revoke_failed"
	EvEnded            = "grant.ended"
	EvExtendRequested  = "grant.extension_requested"
	EvExtended         = "grant.extended"
	EvExtensionDenied  = "grant.extension_denied"
	EvCredentialsTaken = "grant.credentials_fetched"
	EvActivity         = "grant.activity"
	EvRefused          = "request.refused"
	EvDevicePosture    = "device.posture"
	EvApprovalRefused  = "request.approval_refused"
	EvExtensionRefused = "grant.extension_refused"
	EvOrphanRemoved    = "reconcile.orphan_removed"
	EvLogin            = "session.login"
	EvLoginRefused     = "session.login_refused"
	EvLogout           = "session.logout"
	EvSessionRevoked   = "session.revoked"
	EvGroupsChanged    = "user.groups_changed"
	EvTokenCreated     = "token.created"
	EvTokenRevoked     = "token.revoked"
)

// AuditEvent is one record of the append-only audit log. Events form a hash
// chain: each Hash covers the event and the previous event's Hash, so that
// editing, deleting, inserting or reordering a record breaks the chain.
type AuditEvent struct {
	// Seq numbers events from 1 with no gaps; assigned by the store.
	Seq       int64           `json:"seq"`
	Time      time.Time       `json:"time"`
	Type      string          `json:"type"`
	Actor     string          `json:"actor"`
	RequestID string          `json:"request_id,omitempty"`
	User      string          `json:"user,omitempty"`
	Resource  string          `json:"resource,omitempty"`
	Role      string          `json:"role,omitempty"`
	From      State           `json:"from,omitempty"`
	To        State           `json:"to,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	PrevHash  string          `json:"prev_hash"`
	Hash      string          `json:"hash"`
}

// NewAuditEvent builds the event that records r moving from state from, by
// actor, with data (marshalled to JSON; it must hold no secrets).
func NewAuditEvent(typ, actor string, from State, r Request, data any, now time.Time) AuditEvent {
	ev := AuditEvent{
		Time: now.UTC(), Type: typ, Actor: actor,
		RequestID: r.ID, User: r.User, Resource: r.Resource, Role: r.Role,
		From: from, To: r.State,
	}
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			b, _ = json.Marshal(map[string]string{"marshal_error": err.Error()})
		}
		ev.Data = b
	}
	return ev
}

// ComputeHash returns the chain hash of e after prev: SHA-256 over prev and
// every field but Hash, each length-prefixed. It does not read e.PrevHash.
//
// The first field stands where the sequence number was meant to be but
// has always held the 8-byte big-endian number 8 (the first logs were
// hashed so, and stored hashes must keep verifying). A record's position
// is bound by the previous hash it covers and by its leaf index in the
// Merkle tree, not by this field.
func (e AuditEvent) ComputeHash(prev string) string {
	var (
		stack [512]byte
		sum   [2 * sha256.Size]byte
	)
	b := appendHashField(stack[:0], hashSeqField[:])
	b = appendHashField(b, prev)
	b = e.AppendHashTail(b)
	h := sha256.Sum256(b)
	hex.Encode(sum[:], h[:])
	return string(sum[:])
}

// hashSeqField is the first field of every chain hash: the 8-byte
// big-endian number 8 (see [AuditEvent.ComputeHash]).
var hashSeqField = [8]byte{7: 8}

// AppendHashTail appends to b what the chain hash covers after the
// previous hash: every field from Time to Data, each length-prefixed.
// [AuditEvent.ComputeHash] is SHA-256 over the first field (8 bytes of
// length, 8, then 8 bytes holding 8), prev with its 8-byte length, and
// this tail; a store that chains records inside its database computes the
// tail here and the rest there.
func (e AuditEvent) AppendHashTail(b []byte) []byte {
	var ts [48]byte
	b = appendHashField(b, e.Time.UTC().AppendFormat(ts[:0], time.RFC3339Nano))
	b = appendHashField(b, e.Type)
	b = appendHashField(b, e.Actor)
	b = appendHashField(b, e.RequestID)
	b = appendHashField(b, e.User)
	b = appendHashField(b, e.Resource)
	b = appendHashField(b, e.Role)
	b = appendHashField(b, e.From)
	b = appendHashField(b, e.To)
	return appendHashField(b, e.Data)
}

// appendHashField appends s to b after its length, 8 bytes big-endian.
func appendHashField[S ~string | ~[]byte](b []byte, s S) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// ChainError reports the first audit record at which the chain breaks.
type ChainError struct {
	Seq    int64
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit log broken at record %d: %s", e.Seq, e.Reason)
}

// ChainVerifier checks audit events one by one, in order.
type ChainVerifier struct {
	prev  string
	next  int64
	Count int64
}

// Add checks the next event. It returns a *ChainError at the first record
// that was edited, removed, inserted or moved.
func (v *ChainVerifier) Add(e AuditEvent) error {
	if v.next == 0 {
		v.next = 1
	}
	if e.Seq != v.next {
		return &ChainError{Seq: v.next, Reason: fmt.Sprintf("expected record %d, found %d (a record was removed, inserted or moved)", v.next, e.Seq)}
	}
	if e.PrevHash != v.prev {
		return &ChainError{Seq: e.Seq, Reason: "does not follow the previous record (a record was removed, inserted or moved)"}
	}
	if got := e.ComputeHash(v.prev); got != e.Hash {
		return &ChainError{Seq: e.Seq, Reason: "content does not match its hash (the record was edited)"}
	}
	v.prev = e.Hash
	v.next++
	v.Count++
	return nil
}

// Head returns the hash of the last event checked.
func (v *ChainVerifier) Head() string { return v.prev }
