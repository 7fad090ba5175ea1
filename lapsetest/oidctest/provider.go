// Package oidctest runs a real OpenID Provider (the op package of
// github.com/zitadel/oidc) on a loopback httptest server for tests: users,
// clients, authorization requests, codes and tokens live in memory, and a
// plain HTML login form signs users in by name. Knobs make it misbehave
// on purpose (wrong nonce, audience, expiry, signing key, missing groups)
// so that relying parties can be tested against each refusal.
package oidctest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"html/template"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// User is a user of the test provider.
type User struct {
	// ID is the subject; Email the email claim (verified).
	ID    string
	Email string
	// Groups go into the groups claim; NoGroups leaves the claim out.
	Groups   []string
	NoGroups bool
	// AMR are the authentication methods reported (e.g. pwd, otp);
	// ACR the context class.
	AMR []string
	ACR string
	// AuthAge makes auth_time lie this far in the past.
	AuthAge time.Duration
}

// Tamper makes the provider issue bad ID tokens.
type Tamper struct {
	// Nonce, if set, replaces the nonce the client sent.
	Nonce string
	// Lifetime, if set, is the ID token's lifetime; negative makes tokens
	// that have already expired.
	Lifetime time.Duration
	// OtherKey signs ID tokens with a key the provider does not publish.
	OtherKey bool
	// Claims, if set, edits the ID token's claims on the way out of the
	// token endpoint; the token is signed again with the published key
	// (or the other key with OtherKey). Use it for a wrong audience or
	// issuer that is otherwise correctly signed.
	Claims func(claims map[string]any)
}

// Provider is a running test OpenID Provider.
type Provider struct {
	// Issuer is the provider's issuer: its server's URL, no trailing
	// slash.
	Issuer string
	server *httptest.Server
	op     *op.Provider

	mu       sync.Mutex
	users    map[string]User // by ID
	clients  map[string]*client
	requests map[string]*authRequest // by id
	codes    map[string]string       // code -> request id
	tokens   map[string]*accessToken
	tamper   Tamper
	key      signingKey
	other    signingKey
	// LastMaxAge and LastPrompt are what the last authorization request
	// asked for.
	lastMaxAge *uint
	lastPrompt []string
}

// Start runs a provider until t ends.
func Start(t testing.TB) *Provider {
	t.Helper()
	p := &Provider{users: map[string]User{}, clients: map[string]*client{}, requests: map[string]*authRequest{},
		codes: map[string]string{}, tokens: map[string]*accessToken{}, key: newKey(t, "key-1"), other: newKey(t, "key-other")}
	p.server = httptest.NewUnstartedServer(nil)
	p.Issuer = "http://" + p.server.Listener.Addr().String()
	var crypto [32]byte
	_, _ = rand.Read(crypto[:])
	prov, err := op.NewProvider(&op.Config{CryptoKey: crypto, CodeMethodS256: true, AuthMethodPost: true,
		SupportedClaims: []string{"sub", "aud", "exp", "iat", "iss", "auth_time", "nonce", "acr", "amr", "email", "email_verified", "groups"}},
		p, op.StaticIssuer(p.Issuer), op.WithAllowInsecure())
	if err != nil {
		p.server.Listener.Close()
		t.Fatalf("start OpenID provider: %v", err)
	}
	p.op = prov
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", p.loginForm)
	mux.HandleFunc("POST /login", p.loginSubmit)
	mux.Handle("POST /oauth/token", p.rewriteIDToken(prov))
	mux.Handle("/", prov)
	p.server.Config.Handler = mux
	p.server.Start()
	t.Cleanup(p.server.Close)
	return p
}

// AddUser adds or replaces a user.
func (p *Provider) AddUser(u User) {
	p.mu.Lock()
	defer p.mu.Unlock()
	u.Groups, u.AMR = slices.Clone(u.Groups), slices.Clone(u.AMR)
	p.users[u.ID] = u
}

// AddClient registers a confidential client with its exact redirect URIs.
func (p *Provider) AddClient(id, secret string, redirectURIs ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clients[id] = &client{id: id, secret: secret, redirects: slices.Clone(redirectURIs)}
}

// SetTamper sets how the next tokens are spoiled; the zero Tamper issues
// good tokens again.
func (p *Provider) SetTamper(t Tamper) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tamper = t
}

// LastAuthRequest returns the max_age and prompt of the last authorization
// request (max_age is nil when it was not sent).
func (p *Provider) LastAuthRequest() (maxAge *uint, prompt []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastMaxAge, slices.Clone(p.lastPrompt)
}

// loginPage is the provider's login form. It names an empty icon, so that
// a browser asks for no favicon.ico (whose 404 a browser test would see).
var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html><head><link rel="icon" href="data:,"></head><body><form method="post" action="/login">
<input type="hidden" name="id" value="{{.}}">
<input name="username"><button type="submit">Sign in</button>
</form></body></html>`))

func (p *Provider) loginForm(w http.ResponseWriter, r *http.Request) {
	_ = loginPage.Execute(w, r.URL.Query().Get("authRequestID"))
}

func (p *Provider) loginSubmit(w http.ResponseWriter, r *http.Request) {
	id, name := r.FormValue("id"), r.FormValue("username")
	p.mu.Lock()
	req, ok := p.requests[id]
	u, known := p.users[name]
	if ok && known {
		req.subject, req.done = u.ID, true
		req.authTime = time.Now().Add(-u.AuthAge).UTC().Truncate(time.Second)
		req.amr, req.acr = slices.Clone(u.AMR), u.ACR
	}
	p.mu.Unlock()
	switch {
	case !ok:
		http.Error(w, "unknown authorization request", http.StatusBadRequest)
	case !known:
		http.Error(w, "unknown user "+name, http.StatusForbidden)
	default:
		http.Redirect(w, r, op.AuthCallbackURL(p.op)(r.Context(), id), http.StatusFound)
	}
}

// signingKey is an ECDSA P-256 key (ES256).
type signingKey struct {
	id  string
	key *ecdsa.PrivateKey
}

func newKey(t testing.TB, id string) signingKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	return signingKey{id: id, key: k}
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// errNotFound is what lookups of unknown things return.
var errNotFound = errors.New("not found")
