package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lapse-access/lapse"
)

// maxSnippet is how much of an error response's body an error quotes.
const maxSnippet = 200

// masked replaces the secret if a receiver echoes it.
const masked = "xxxxx"

// Body is the JSON body of a provision, revoke or extend call.
type Body struct {
	// Event is "provision", "revoke" or "extend".
	Event string `json:"event"`
	// GrantID identifies the grant; the same in every call for it.
	GrantID  string `json:"grant_id"`
	User     string `json:"user"`
	Resource string `json:"resource"`
	Role     string `json:"role"`
	// ExpiresAt is the end of the access window, RFC 3339 in UTC; for
	// extend, the new end.
	ExpiresAt string `json:"expires_at"`
	// Reason is the requester's stated reason.
	Reason string `json:"reason"`
	// Params are the role's params ([RoleSettings.Params]); never null.
	Params map[string]string `json:"params"`
	// CallID is random and new in every call, retries included, so that
	// no two calls have the same signature: a receiver can refuse a
	// signature it has seen as a replay.
	CallID string `json:"call_id"`
}

// Response is what a receiver may answer with a 2xx status. Every field is
// optional and unknown fields are ignored.
type Response struct {
	// Credentials are handed to the requester once (provision and extend).
	Credentials *lapse.Credentials `json:"credentials,omitempty"`
	// Receipt holds non-secret facts about what the receiver did. A
	// provision receipt goes into the audit record; a revoke receipt is
	// the revocation's receipt.
	Receipt map[string]string `json:"receipt,omitempty"`
	// GrantIDs answers a list call: the grants that have access.
	GrantIDs []string `json:"grant_ids,omitempty"`
}

// Limits on what a response may carry.
const (
	maxKind         = 64
	maxReceiptKeys  = 64
	maxReceiptKey   = 128
	maxReceiptValue = 4096
	maxGrantID      = 256
)

// ParseResponse decodes and checks the body of a 2xx response. An empty
// body is an empty Response. Its errors quote nothing from the body.
func ParseResponse(body []byte) (Response, error) {
	var r Response
	if len(bytes.TrimSpace(body)) == 0 {
		return r, nil
	}
	if len(body) > MaxResponseBytes {
		return r, fmt.Errorf("the response is larger than %d bytes", MaxResponseBytes)
	}
	if err := json.Unmarshal(body, &r); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return Response{}, fmt.Errorf("the response is not valid JSON (at byte %d)", se.Offset)
		case errors.As(err, &te):
			return Response{}, fmt.Errorf("the response's %q is not a %s", te.Field, te.Type)
		}
		return Response{}, errors.New("the response is not a valid JSON object")
	}
	if cr := r.Credentials; cr != nil {
		if cr.Kind == "" {
			cr.Kind = "text"
		}
		switch {
		case cr.Value == "" && cr.Instructions == "":
			return Response{}, errors.New("the response's credentials have neither a value nor instructions")
		case len(cr.Kind) > maxKind || !isText(cr.Kind):
			return Response{}, fmt.Errorf("the response's credentials kind must be text of at most %d bytes", maxKind)
		case !utf8.ValidString(cr.Value) || !utf8.ValidString(cr.Instructions):
			return Response{}, errors.New("the response's credentials must be UTF-8 text")
		}
	}
	if len(r.Receipt) > maxReceiptKeys {
		return Response{}, fmt.Errorf("the response's receipt has %d keys, at most %d are allowed", len(r.Receipt), maxReceiptKeys)
	}
	for k, v := range r.Receipt {
		if k == "" || len(k) > maxReceiptKey || !isText(k) || len(v) > maxReceiptValue || !utf8.ValidString(v) {
			return Response{}, fmt.Errorf("the response's receipt must map keys of 1 to %d bytes to values of at most %d bytes, all UTF-8 text", maxReceiptKey, maxReceiptValue)
		}
	}
	for _, id := range r.GrantIDs {
		if id == "" || len(id) > maxGrantID || !isText(id) {
			return Response{}, fmt.Errorf("the response's grant_ids must be text of 1 to %d bytes", maxGrantID)
		}
	}
	return r, nil
}

// StatusError reports a receiver's answer outside 2xx.
type StatusError struct {
	// Event is the call's event.
	Event string
	// Code is the HTTP status code.
	Code int
	// Body is the start of the response body, at most 200 bytes of text.
	Body string
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("the receiver answered %d %s", e.Code, http.StatusText(e.Code))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Retryable reports whether the status says that the same call may
// succeed later: 408, 409, 425, 429 and every status that is not 4xx.
func (e *StatusError) Retryable() bool {
	switch e.Code {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly, http.StatusTooManyRequests:
		return true
	}
	return e.Code < 400 || e.Code > 499
}

// result is a 2xx answer.
type result struct {
	Response
	Status int
}

// Sign returns the value of the [SignatureHeader] for body sent at t with
// secret: "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">".
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// call sends one signed call for g and returns the receiver's 2xx answer.
func (c *Connector) call(ctx context.Context, event string, g lapse.Grant) (result, error) {
	what := event + " grant " + g.ID
	if event == EventList {
		what = "list grants"
	}
	fail := func(err error) (result, error) {
		return result{}, fmt.Errorf("webhook connector %s: %s: %w", c.name, what, err)
	}
	body, key, err := c.body(event, g)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	target := c.urls[event]
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		return fail(errors.New("build the request"))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "lapse-webhook/1")
	if key != "" {
		req.Header.Set(IdempotencyHeader, key)
	}
	req.Header.Set(SignatureHeader, Sign(c.secret, body, c.now()))
	start := time.Now()
	resp, err := c.client.Do(req)
	if err != nil {
		return fail(c.transportError(target, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// Read a secret's length more, so that a secret echoed across
		// the cut is masked whole before the cut.
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, int64(maxSnippet+len(c.secret))))
		se := &StatusError{Event: event, Code: resp.StatusCode, Body: c.clean(snippet)}
		var err error = se
		if (event == EventProvision || event == EventExtend) && !se.Retryable() {
			err = lapse.Unrecoverable(se)
		}
		return fail(err)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return fail(c.transportError(target, fmt.Errorf("read the response: %w", err)))
	}
	if len(raw) > MaxResponseBytes {
		return fail(fmt.Errorf("the response is larger than %d bytes", MaxResponseBytes))
	}
	r, err := ParseResponse(raw)
	if err != nil {
		return fail(err)
	}
	c.logger.DebugContext(ctx, "webhook call", logEvent, event, logGrant, g.ID, logStatus, resp.StatusCode, logElapsed, time.Since(start))
	return result{Response: r, Status: resp.StatusCode}, nil
}

// body returns the JSON body of a call and its idempotency key.
func (c *Connector) body(event string, g lapse.Grant) ([]byte, string, error) {
	var id [16]byte
	_, _ = rand.Read(id[:])
	callID := hex.EncodeToString(id[:])
	if event == EventList {
		b, err := json.Marshal(map[string]string{"event": EventList, "call_id": callID})
		return b, "", err
	}
	if g.ID == "" {
		return nil, "", lapse.Invalidf("the grant has no id")
	}
	s, err := settingsOf(g)
	if event != EventRevoke {
		if g.ExpiresAt.IsZero() {
			return nil, "", lapse.Unrecoverable(lapse.Invalidf("the grant has no expiry"))
		}
		if err != nil {
			return nil, "", lapse.Unrecoverable(err)
		}
	}
	// A revocation goes out even if the role's settings changed since:
	// without its params if they are no longer valid.
	params := s.Params
	if err != nil {
		params = nil
	}
	if params == nil {
		params = map[string]string{}
	}
	var expires string
	if !g.ExpiresAt.IsZero() {
		expires = g.ExpiresAt.UTC().Format(time.RFC3339)
	}
	b, err := json.Marshal(Body{
		Event: event, GrantID: g.ID, User: g.User, Resource: g.Resource, Role: g.Role,
		ExpiresAt: expires, Reason: g.Reason, Params: params, CallID: callID,
	})
	if err != nil {
		return nil, "", fmt.Errorf("encode the body: %w", err)
	}
	return b, IdempotencyKey(event, g.ID, g.ExpiresAt), nil
}

// IdempotencyKey returns the [IdempotencyHeader] of a call:
// "<grant id>:provision", "<grant id>:revoke", or for extend
// "<grant id>:extend:<new expiry in unix seconds>", since one grant may be
// extended more than once.
func IdempotencyKey(event, grantID string, expires time.Time) string {
	if event == EventExtend {
		return grantID + ":" + event + ":" + strconv.FormatInt(expires.Unix(), 10)
	}
	return grantID + ":" + event
}

// transportError describes a failed exchange without the URL's query,
// which may hold a token, and keeps context errors matchable.
func (c *Connector) transportError(target *url.URL, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	shown := url.URL{Scheme: target.Scheme, Host: target.Host, Path: target.Path}
	return &callError{msg: fmt.Sprintf("post %s: %s", shown.String(), c.mask(err.Error())), err: err}
}

// callError is a failed exchange. It unwraps to the underlying error so
// that context.DeadlineExceeded stays matchable; its message is masked.
type callError struct {
	msg string
	err error
}

func (e *callError) Error() string { return e.msg }
func (e *callError) Unwrap() error { return e.err }

// clean turns the start of a response body into one line of at most
// maxSnippet bytes of text that shows no secret.
func (c *Connector) clean(b []byte) string {
	b = []byte(c.mask(string(b)))
	if len(b) > maxSnippet {
		b = b[:maxSnippet]
	}
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// mask replaces the secret in s.
func (c *Connector) mask(s string) string {
	if len(c.secret) == 0 {
		return s
	}
	return strings.ReplaceAll(s, string(c.secret), masked)
}
