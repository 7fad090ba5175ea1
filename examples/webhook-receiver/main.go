// Command webhook-receiver is an example receiver for Lapse's webhook
// connector. It checks every call's signature with the shared secret,
// refuses stale timestamps and replays, and keeps the accesses it grants
// in memory: a provision issues a bearer token, a revoke withdraws it.
// A real receiver would create and remove the access in its own system
// instead.
//
// Run it with the secret that Lapse signs with:
//
//	LAPSE_WEBHOOK_SECRET=$(cat secret) LISTEN=127.0.0.1:8080 go run ./examples/webhook-receiver
//
// and point the connector's provision, revoke, extend and list URLs at
// http://127.0.0.1:8080/lapse.
package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// tolerance is how far a call's timestamp may be from the receiver's
// clock, either way.
const tolerance = 5 * time.Minute

// maxBody bounds a call's body.
const maxBody = 1 << 20

func main() {
	secret := os.Getenv("LAPSE_WEBHOOK_SECRET")
	if len(secret) < 32 {
		log.Fatal("set LAPSE_WEBHOOK_SECRET to the secret shared with Lapse (at least 32 bytes)")
	}
	addr := os.Getenv("LISTEN")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	mux := http.NewServeMux()
	mux.Handle("POST /lapse", NewReceiver([]byte(secret), time.Now))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Printf("listening on %s", addr)
	log.Fatal(srv.ListenAndServe())
}

// call is the JSON body Lapse sends.
type call struct {
	Event     string            `json:"event"`
	GrantID   string            `json:"grant_id"`
	User      string            `json:"user"`
	Resource  string            `json:"resource"`
	Role      string            `json:"role"`
	ExpiresAt time.Time         `json:"expires_at"`
	Reason    string            `json:"reason"`
	Params    map[string]string `json:"params"`
}

// access is one grant's access.
type access struct {
	user, resource, role string
	token                string
	expires              time.Time
	revokedAt            time.Time // zero while active
}

// Receiver handles Lapse's calls. It is safe for concurrent use.
type Receiver struct {
	secret []byte
	now    func() time.Time

	mu     sync.Mutex
	seen   map[string]time.Time // signatures of recent calls, by their timestamp
	grants map[string]*access   // by grant id
}

// NewReceiver returns a receiver that checks signatures with secret and
// reads the time from now.
func NewReceiver(secret []byte, now func() time.Time) *Receiver {
	return &Receiver{secret: secret, now: now, seen: map[string]time.Time{}, grants: map[string]*access{}}
}

// ServeHTTP checks a call and handles its event. Refused calls get 401,
// malformed ones 400.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	if err := rc.verify(r.Header.Get("Lapse-Signature"), body); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	var c call
	if err := json.Unmarshal(body, &c); err != nil {
		http.Error(w, "malformed JSON", http.StatusBadRequest)
		return
	}
	if c.Event != "list" && c.GrantID == "" {
		http.Error(w, "grant_id is missing", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	switch c.Event {
	case "provision":
		rc.provision(w, c)
	case "extend":
		rc.extend(w, c)
	case "revoke":
		rc.revoke(w, c)
	case "list":
		rc.list(w)
	default:
		http.Error(w, "unknown event", http.StatusBadRequest)
	}
}

// verify checks the signature header of body: a timestamp within the
// tolerance, a valid HMAC, and a signature not seen before.
func (rc *Receiver) verify(header string, body []byte) error {
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return errors.New("missing or malformed Lapse-Signature")
	}
	now := rc.now()
	t := time.Unix(unix, 0)
	if t.Before(now.Add(-tolerance)) || t.After(now.Add(tolerance)) {
		return errors.New("timestamp outside the tolerance")
	}
	mac := hmac.New(sha256.New, rc.secret)
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	var match string
	for _, s := range sigs {
		got, err := hex.DecodeString(s)
		if err == nil && hmac.Equal(got, want) {
			match = s
		}
	}
	if match == "" {
		return errors.New("signature mismatch")
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for s, at := range rc.seen {
		if at.Before(now.Add(-tolerance)) {
			delete(rc.seen, s)
		}
	}
	if _, ok := rc.seen[match]; ok {
		return errors.New("replayed call")
	}
	rc.seen[match] = t
	return nil
}

// provision grants access once: a retry returns the same token. A grant
// already revoked is never provisioned again, even by a late retry.
func (rc *Receiver) provision(w http.ResponseWriter, c call) {
	a, ok := rc.grants[c.GrantID]
	if ok && !a.revokedAt.IsZero() {
		http.Error(w, "grant was revoked", http.StatusGone)
		return
	}
	if !ok {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		a = &access{user: c.User, resource: c.Resource, role: c.Role, token: hex.EncodeToString(b)}
		rc.grants[c.GrantID] = a
	}
	a.expires = c.ExpiresAt
	writeJSON(w, map[string]any{
		"credentials": map[string]string{
			"kind":  "token",
			"value": a.token,
			"instructions": fmt.Sprintf("Send it as 'Authorization: Bearer <token>' to %s until %s.",
				a.resource, a.expires.UTC().Format(time.RFC3339)),
		},
		"receipt": map[string]string{"grant_id": c.GrantID, "expires_at": a.expires.UTC().Format(time.RFC3339)},
	})
}

// extend moves the expiry of an active access.
func (rc *Receiver) extend(w http.ResponseWriter, c call) {
	a, ok := rc.grants[c.GrantID]
	switch {
	case !ok:
		http.Error(w, "unknown grant", http.StatusNotFound)
		return
	case !a.revokedAt.IsZero():
		http.Error(w, "grant was revoked", http.StatusGone)
		return
	}
	a.expires = c.ExpiresAt
	writeJSON(w, map[string]any{"receipt": map[string]string{"expires_at": a.expires.UTC().Format(time.RFC3339)}})
}

// revoke withdraws the access. Revoking again, or revoking a grant never
// seen, confirms all the same; the grant is remembered as revoked.
func (rc *Receiver) revoke(w http.ResponseWriter, c call) {
	a, ok := rc.grants[c.GrantID]
	if !ok {
		a = &access{user: c.User, resource: c.Resource, role: c.Role}
		rc.grants[c.GrantID] = a
	}
	if a.revokedAt.IsZero() {
		a.revokedAt = rc.now().UTC()
	}
	writeJSON(w, map[string]any{"receipt": map[string]string{
		"grant_id":   c.GrantID,
		"token":      "withdrawn",
		"revoked_at": a.revokedAt.Format(time.RFC3339),
	}})
}

// list answers with the grants that have access now.
func (rc *Receiver) list(w http.ResponseWriter) {
	ids := []string{}
	now := rc.now()
	for id, a := range rc.grants {
		if a.revokedAt.IsZero() && now.Before(a.expires) {
			ids = append(ids, id)
		}
	}
	writeJSON(w, map[string]any{"grant_ids": ids})
}

// Authorized reports whether token gives access now, and to which grant:
// what the system behind the receiver would check at each use.
func (rc *Receiver) Authorized(token string) (grantID string, ok bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	now := rc.now()
	for id, a := range rc.grants {
		if a.token != "" && hmac.Equal([]byte(a.token), []byte(token)) && a.revokedAt.IsZero() && now.Before(a.expires) {
			return id, true
		}
	}
	return "", false
}

// writeJSON answers 200 with v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
