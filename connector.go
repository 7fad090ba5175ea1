package lapse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Grant is what a connector is asked to provision or remove.
type Grant struct {
	ID        string
	User      string
	Resource  string
	Role      string
	ExpiresAt time.Time
	// Ref is the connector's handle from Provision; empty before it.
	Ref string
	// Settings is the role's connector settings as returned by
	// [RoleDecoder.DecodeRole].
	Settings any
	// Reason is the requester's stated reason, for targets that record it.
	Reason string
	// Inputs are the requester's inputs for the connector (see
	// [Request.Inputs]).
	Inputs map[string]string
	// ClientIP is the address the request came from (see
	// [Request.ClientIP]).
	ClientIP string
}

// Credentials are handed to the requester once. They never reach logs, audit
// records or listings.
type Credentials struct {
	// Kind says what Value is: "token", "postgres_url", "ssh_certificate", "text".
	Kind  string `json:"kind"`
	Value string `json:"value"`
	// Instructions tell the requester how to use Value.
	Instructions string `json:"instructions,omitempty"`
}

// Provisioned is the result of a successful [Connector.Provision].
type Provisioned struct {
	// Ref identifies what was created, for revocation.
	Ref         string
	Credentials *Credentials
	// Details are non-secret facts for the audit record.
	Details map[string]string
	// Outputs are non-secret results the requester may read again from the
	// request, such as an SSH certificate.
	Outputs map[string]string
}

// Existing is one access that a connector finds in its target.
type Existing struct {
	Ref     string
	GrantID string
}

// Connector provisions access in one target system. Every method is safe to
// retry: the scheduler calls them again after failures and crashes.
type Connector interface {
	// Provision creates the access for g. Called twice for the same grant it
	// leaves one access behind. Errors marked with [Unrecoverable] are not
	// retried.
	Provision(ctx context.Context, g Grant) (Provisioned, error)
	// Revoke removes the access and ends live use of it. Revoking something
	// already gone, or never created, succeeds.
	Revoke(ctx context.Context, g Grant) error
	// VerifyGone checks in the target that the access no longer exists and
	// returns what it checked, as the revocation receipt. It returns an error
	// if anything is left.
	VerifyGone(ctx context.Context, g Grant) (map[string]string, error)
	// Extend moves the expiry of the access to g.ExpiresAt. It may return new
	// credentials to hand to the requester.
	Extend(ctx context.Context, g Grant) (*Credentials, error)
	// List returns the accesses that exist in the target, for reconciliation.
	List(ctx context.Context) ([]Existing, error)
}

// RoleDecoder is implemented by connectors whose roles take settings.
// DecodeRole decodes a role's settings strictly (an unknown key is an error)
// with decode, validates them and returns the value passed as
// [Grant.Settings]. A connector that does not implement it accepts no
// settings.
type RoleDecoder interface {
	DecodeRole(decode func(v any) error) (any, error)
}

// Sealer encrypts credentials that wait in the store for their requester.
// aad binds the ciphertext to its request, so that it cannot be moved to
// another.
type Sealer interface {
	Seal(plaintext, aad []byte) ([]byte, error)
	Open(sealed, aad []byte) ([]byte, error)
}

// LocalRevoker is implemented by connectors whose access exists only in
// Lapse's own records, such as the token connector, whose tokens are
// refused by /v1/check once their grant is no longer active. Their Revoke
// and VerifyGone do no I/O, so the scheduler calls them inside the
// transaction that ends an expired grant instead of claiming it first.
type LocalRevoker interface {
	RevokesLocally() bool
}

// Activity is one thing seen done with a grant in its target during the
// window, such as a database session. It holds no secrets.
type Activity struct {
	// Key identifies the activity within the grant, so that one session
	// sampled many times is recorded once (e.g. "pid 4242 since 12:01:05").
	Key string `json:"key"`
	// Kind says what it is: "session", "login", "query".
	Kind string `json:"kind"`
	// At is when it started.
	At time.Time `json:"at"`
	// Details are facts for humans and rules: client address, application,
	// the query text truncated.
	Details map[string]string `json:"details,omitempty"`
}

// ActivitySampler is implemented by connectors that can report what is
// being done with a grant's access right now.
type ActivitySampler interface {
	// SampleActivity returns the activity under g that the target shows now.
	SampleActivity(ctx context.Context, g Grant) ([]Activity, error)
}

// Pinger is implemented by connectors that can tell whether their target is
// reachable, so that the scheduler can wait for a target that is down
// without calling it for every grant, and retry at once when it is back.
type Pinger interface {
	Ping(ctx context.Context) error
}

// InputValidator is implemented by connectors that take inputs from the
// requester (see [Request.Inputs]). ValidateInputs checks them against the
// role's settings when the request is made, so that bad input is refused
// at once with an [ErrInvalid] error rather than failing provisioning
// later. Connectors that do not implement it accept no inputs.
type InputValidator interface {
	ValidateInputs(inputs map[string]string, settings any) error
}

// SealCredentials encrypts credentials for the requester of request id.
func SealCredentials(s Sealer, id string, c *Credentials) ([]byte, error) {
	if s == nil {
		return nil, errors.New("no sealer configured for waiting credentials")
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode credentials: %w", err)
	}
	return s.Seal(b, []byte(id))
}

// OpenCredentials decrypts what [SealCredentials] sealed for request id.
func OpenCredentials(s Sealer, id string, sealed []byte) (*Credentials, error) {
	b, err := s.Open(sealed, []byte(id))
	if err != nil {
		return nil, err
	}
	var c Credentials
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("decode credentials: %w", err)
	}
	return &c, nil
}
