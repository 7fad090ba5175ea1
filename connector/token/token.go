package token

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/internal/keyfile"
)

// Claims are the claims of a Lapse access token.
type Claims struct {
	jwt.RegisteredClaims
	// Role is the role granted on the resource named by the audience.
	Role string `json:"role"`
}

// Connector signs access tokens. It keeps no state of its own: whether the
// grant behind a token is still active is the store's to say.
type Connector struct {
	// Issuer is the token's iss claim.
	Issuer string
	// Now returns the current time; time.Now if nil.
	Now func() time.Time

	key ed25519.PrivateKey
	kid string
}

var _ lapse.Connector = (*Connector)(nil)

// New returns a connector that signs with key.
func New(key ed25519.PrivateKey, issuer string) *Connector {
	sum := sha256.Sum256(key.Public().(ed25519.PublicKey))
	return &Connector{Issuer: issuer, key: key, kid: base64.RawURLEncoding.EncodeToString(sum[:8])}
}

// KeyID is the kid of the signing key.
func (c *Connector) KeyID() string { return c.kid }

func (c *Connector) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Connector) sign(g lapse.Grant) (string, error) {
	now := c.now()
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    c.Issuer,
			Subject:   g.User,
			Audience:  jwt.ClaimStrings{g.Resource},
			ExpiresAt: jwt.NewNumericDate(g.ExpiresAt),
			NotBefore: jwt.NewNumericDate(now.Add(-30 * time.Second)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        g.ID,
		},
		Role: g.Role,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = c.kid
	s, err := t.SignedString(c.key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

func (c *Connector) credentials(g lapse.Grant) (*lapse.Credentials, error) {
	s, err := c.sign(g)
	if err != nil {
		return nil, err
	}
	return &lapse.Credentials{
		Kind:  "token",
		Value: s,
		Instructions: fmt.Sprintf("Send it as 'Authorization: Bearer <token>' to %s; it expires at %s.",
			g.Resource, g.ExpiresAt.UTC().Format(time.RFC3339)),
	}, nil
}

// Provision signs a token for the grant. The token's jti is the grant id.
func (c *Connector) Provision(_ context.Context, g lapse.Grant) (lapse.Provisioned, error) {
	if g.ExpiresAt.IsZero() {
		return lapse.Provisioned{}, lapse.Unrecoverable(errors.New("token grant has no expiry"))
	}
	cred, err := c.credentials(g)
	if err != nil {
		return lapse.Provisioned{}, err
	}
	return lapse.Provisioned{
		Ref:         g.ID,
		Credentials: cred,
		Details:     map[string]string{"jti": g.ID, "kid": c.kid, "exp": g.ExpiresAt.UTC().Format(time.RFC3339)},
	}, nil
}

// Revoke has nothing to remove: once the grant is no longer active,
// /v1/check refuses its token, and the token's exp bounds it regardless.
func (c *Connector) Revoke(context.Context, lapse.Grant) error { return nil }

// RevokesLocally reports that a token grant ends with Lapse's own record of
// it: Revoke and VerifyGone do no I/O.
func (c *Connector) RevokesLocally() bool { return true }

var _ lapse.LocalRevoker = (*Connector)(nil)

// VerifyGone returns the receipt for a token grant: its jti is refused by
// /v1/check from now on and the token itself expires at its exp.
func (c *Connector) VerifyGone(_ context.Context, g lapse.Grant) (map[string]string, error) {
	return map[string]string{
		"jti":       g.ID,
		"check":     "refused: grant no longer active",
		"token_exp": g.ExpiresAt.UTC().Format(time.RFC3339),
	}, nil
}

// Extend signs a new token with the later expiry.
func (c *Connector) Extend(_ context.Context, g lapse.Grant) (*lapse.Credentials, error) {
	return c.credentials(g)
}

// List returns nothing: tokens exist only as long as Lapse's own records say.
func (c *Connector) List(context.Context) ([]lapse.Existing, error) { return nil, nil }

// Verify checks a token's signature, issuer and expiry, and returns its
// claims. Whether its grant is still active is for the caller to check.
func (c *Connector) Verify(token string) (*Claims, error) {
	var claims Claims
	_, err := jwt.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		return c.key.Public(), nil
	}, jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}), jwt.WithIssuer(c.Issuer),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(c.now))
	if err != nil {
		return nil, fmt.Errorf("verify token: %w", err)
	}
	return &claims, nil
}

// JWKS returns the JSON Web Key Set that publishes the verification key.
func (c *Connector) JWKS() []byte {
	pub := c.key.Public().(ed25519.PublicKey)
	b, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": c.kid,
		"x": base64.RawURLEncoding.EncodeToString(pub),
	}}})
	return b
}

// LoadOrCreateKey reads the Ed25519 signing key from path (PKCS #8 PEM), or
// generates one and writes it there with mode 0600 if the file does not
// exist. It refuses a key file that others can read.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	return LoadOrCreateKeyIn(context.Background(), keyfile.Dir(filepath.Dir(path)), filepath.Base(path))
}

// LoadOrCreateKeyIn returns the Ed25519 signing key stored under name in
// keys (PKCS #8 PEM), generating and storing one if there is none. Servers
// that share keys sign with the same key.
func LoadOrCreateKeyIn(ctx context.Context, keys lapse.KeyStore, name string) (ed25519.PrivateKey, error) {
	b, err := keys.LoadOrCreate(ctx, name, func() ([]byte, error) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate signing key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("encode signing key: %w", err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	})
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("signing key: not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse signing key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("signing key is not Ed25519")
	}
	return key, nil
}
