package ssh

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/lapse-access/lapse"
)

// DefaultSkew is how far before now a certificate becomes valid, so that a
// server whose clock is a little behind accepts it at once.
const DefaultSkew = time.Minute

// InputPublicKey is the grant input that holds the requester's public key,
// one line in authorized_keys format.
const InputPublicKey = "ssh_public_key"

// Kinds of [lapse.Credentials] the connector returns.
const (
	// KindCertificate: Value is the certificate, one line in
	// authorized_keys format (what goes in id_ed25519-cert.pub).
	KindCertificate = "ssh_certificate"
	// KindKeyAndCertificate: Lapse generated the key pair. Value is the
	// private key as an OpenSSH PEM block, followed by the certificate
	// line. [SplitCredentials] separates them.
	KindKeyAndCertificate = "ssh_key_and_certificate"
)

// maxPublicKeyInput bounds the length of the public key input, in bytes.
const maxPublicKeyInput = 16 << 10

// minRSABits is the smallest RSA key the connector certifies.
const minRSABits = 2048

// Log attribute keys.
const (
	logSystem    = "system"
	logConnector = "connector"
	logGrant     = "grant"
	logSerial    = "serial"
	logVersion   = "krl_version"
	logSerials   = "serials"
)

// Config configures a [Connector].
type Config struct {
	// Name is the connector's name in the Lapse configuration; errors,
	// logs and the KRL's comment mention it.
	Name string
	// CAKey signs the certificates: an ed25519.PrivateKey from
	// [LoadOrCreateCAKey], or any crypto.Signer of a type OpenSSH
	// accepts for a CA. Required.
	CAKey crypto.Signer
	// StateDir is the directory that holds the revocation list (the file
	// "revoked"); it belongs to this connector alone. It is created on the
	// first revocation. Required unless Store is set.
	StateDir string
	// Store, if set, keeps the revocation list instead of StateDir, so
	// that every server sharing the store serves the same list. A list
	// file found in StateDir is moved into it on first use.
	Store lapse.SerialRevocations
	// KRLRefresh is how often [Connector.Run] checks a list in Store for
	// changes made by other servers; zero means [DefaultKRLRefresh].
	KRLRefresh time.Duration
	// KRLPath, if set, is a file that every change of the revocation list
	// rewrites atomically with the new KRL, for an sshd on this machine
	// to read as its RevokedKeys. Optional: [Connector.KRL] and
	// [Connector.WriteKRL] serve other machines.
	KRLPath string
	// Skew is how far before now certificates become valid. Zero means
	// [DefaultSkew].
	Skew time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// Logger receives the connector's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Connector is an SSH user certificate authority: each grant becomes a
// certificate that is valid until the grant's expiry, and revoking it puts
// its serial in a key revocation list. It implements [lapse.Connector]
// and [lapse.RoleDecoder]. It is safe for concurrent use.
type Connector struct {
	name      string
	signer    gossh.Signer
	caBlob    []byte
	statePath string
	krlPath   string
	skew      time.Duration
	now       func() time.Time
	log       *slog.Logger

	store   lapse.SerialRevocations
	refresh time.Duration

	mu         sync.Mutex
	rev        *revocations // nil until loaded from statePath
	krlWritten uint64       // the KRL version last written to krlPath
	krlOK      bool         // krlWritten was written (a store's list starts at version 0)
	imported   bool         // a list file in statePath was moved into store
}

var (
	_ lapse.Connector   = (*Connector)(nil)
	_ lapse.RoleDecoder = (*Connector)(nil)
)

// New returns a connector configured by cfg. It does no I/O: the
// revocation list is read on first use.
func New(cfg Config) (*Connector, error) {
	if cfg.CAKey == nil {
		return nil, errors.New("ssh connector: no CA key")
	}
	if k, ok := cfg.CAKey.(ed25519.PrivateKey); ok && len(k) != ed25519.PrivateKeySize {
		return nil, errors.New("ssh connector: the CA key is not a valid Ed25519 key")
	}
	if cfg.StateDir == "" && cfg.Store == nil {
		return nil, errors.New("ssh connector: no store or state directory for the revocation list")
	}
	if cfg.Skew < 0 {
		return nil, fmt.Errorf("ssh connector: skew must not be negative, got %s", cfg.Skew)
	}
	signer, err := gossh.NewSignerFromSigner(cfg.CAKey)
	if err != nil {
		return nil, fmt.Errorf("ssh connector: CA key: %w", err)
	}
	if _, ok := cfg.CAKey.Public().(*rsa.PublicKey); ok {
		// OpenSSH refuses SHA-1 signatures; sign RSA with SHA-512.
		signer, err = gossh.NewSignerWithAlgorithms(signer.(gossh.AlgorithmSigner), []string{gossh.KeyAlgoRSASHA512})
		if err != nil {
			return nil, fmt.Errorf("ssh connector: CA key: %w", err)
		}
	}
	c := &Connector{
		name:    cfg.Name,
		signer:  signer,
		caBlob:  signer.PublicKey().Marshal(),
		krlPath: cfg.KRLPath,
		store:   cfg.Store,
		refresh: cfg.KRLRefresh,
		skew:    cfg.Skew,
		now:     cfg.Now,
		log:     cfg.Logger,
	}
	if cfg.StateDir != "" {
		c.statePath = filepath.Join(cfg.StateDir, stateFile)
	} else {
		c.imported = true // nothing to move into the store
	}
	if c.refresh <= 0 {
		c.refresh = DefaultKRLRefresh
	}
	if c.skew == 0 {
		c.skew = DefaultSkew
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.Default().With(logSystem, "connector/ssh")
	}
	c.log = c.log.With(logConnector, cfg.Name)
	return c, nil
}

// CAPublicKey returns the CA's public key in authorized_keys format, one
// line ending in a newline, for sshd's TrustedUserCAKeys.
func (c *Connector) CAPublicKey() []byte {
	line := gossh.MarshalAuthorizedKey(c.signer.PublicKey())
	return append(line[:len(line)-1], []byte(" lapse-ca"+commentName(c.name)+"\n")...)
}

// Name returns the connector's name.
func (c *Connector) Name() string { return c.name }

func commentName(name string) string {
	if name == "" {
		return ""
	}
	return ":" + strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, name)
}

// Serial returns the certificate serial of the grant with the given id: the
// first 8 bytes of the id's SHA-256, with the top bit cleared so that it
// reads the same as a signed number, and never 0, which OpenSSH does not
// revoke. It is the same every time, so a certificate signed again for the
// grant, by a retried Provision or by Extend, has the same serial.
func Serial(grantID string) uint64 {
	sum := sha256.Sum256([]byte(grantID))
	s := binary.BigEndian.Uint64(sum[:8]) &^ (1 << 63)
	if s == 0 {
		s = 1
	}
	return s
}

// KeyID returns the key id of the certificate for a grant:
// lapse:<user>:<grant id>. sshd logs it with every login.
func KeyID(user, grantID string) string { return "lapse:" + user + ":" + grantID }

// serialOf returns the grant's serial, checking its Ref if it has one.
func serialOf(g lapse.Grant) (uint64, error) {
	if g.ID == "" {
		return 0, lapse.Invalidf("grant has no id")
	}
	s := Serial(g.ID)
	if g.Ref != "" && g.Ref != strconv.FormatUint(s, 10) {
		return 0, lapse.Invalidf("grant %s has ref %q, not its certificate serial %d", g.ID, g.Ref, s)
	}
	return s, nil
}

// Provision signs a certificate for the grant: for the public key in the
// grant's ssh_public_key input, or else for a key pair it generates and
// hands over with the certificate. It refuses a grant whose serial was
// revoked. Its Ref is the serial, in decimal.
func (c *Connector) Provision(ctx context.Context, g lapse.Grant) (lapse.Provisioned, error) {
	cert, cred, err := c.issue(ctx, g)
	if err != nil {
		return lapse.Provisioned{}, err
	}
	c.log.Info("ssh certificate issued", logGrant, g.ID, logSerial, cert.Serial)
	return lapse.Provisioned{
		Ref:         strconv.FormatUint(cert.Serial, 10),
		Credentials: cred,
		// A certificate is no secret: the requester may read it again.
		Outputs: map[string]string{"ssh_certificate": strings.TrimSpace(string(gossh.MarshalAuthorizedKey(cert)))},
		Details: map[string]string{
			"serial":          strconv.FormatUint(cert.Serial, 10),
			"key_id":          cert.KeyId,
			"principals":      strings.Join(cert.ValidPrincipals, ","),
			"valid_before":    time.Unix(int64(cert.ValidBefore), 0).UTC().Format(time.RFC3339),
			"key_fingerprint": gossh.FingerprintSHA256(cert.Key),
			"ca_fingerprint":  gossh.FingerprintSHA256(c.signer.PublicKey()),
		},
	}, nil
}

// Extend signs a new certificate with the grant's later expiry and the
// same serial. For a requester's own public key it returns the new
// certificate; for a generated key pair, whose private key Lapse did not
// keep, it returns a new key pair with its certificate. The earlier
// certificate stays valid until its own expiry.
func (c *Connector) Extend(ctx context.Context, g lapse.Grant) (*lapse.Credentials, error) {
	cert, cred, err := c.issue(ctx, g)
	if err != nil {
		return nil, err
	}
	c.log.Info("ssh certificate reissued", logGrant, g.ID, logSerial, cert.Serial)
	return cred, nil
}

// issue signs the certificate for g and returns it with the credentials
// that carry it.
func (c *Connector) issue(ctx context.Context, g lapse.Grant) (*gossh.Certificate, *lapse.Credentials, error) {
	serial, err := serialOf(g)
	if err != nil {
		return nil, nil, lapse.Unrecoverable(err)
	}
	s, err := settingsOf(g)
	if err != nil {
		return nil, nil, lapse.Unrecoverable(err)
	}
	now := c.now()
	if !g.ExpiresAt.After(now) {
		return nil, nil, lapse.Unrecoverable(lapse.Invalidf("grant %s expires at %s, which is not in the future", g.ID, g.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	revoked, err := c.isRevoked(ctx, serial)
	if err != nil {
		return nil, nil, err
	}
	if revoked {
		return nil, nil, lapse.Unrecoverable(lapse.Conflictf("grant %s was revoked; its certificate serial %d is in the revocation list", g.ID, serial))
	}

	var pub gossh.PublicKey
	var keyPEM []byte
	if line, ok := g.Inputs[InputPublicKey]; ok && strings.TrimSpace(line) != "" {
		if pub, err = parsePublicKey(line); err != nil {
			return nil, nil, lapse.Unrecoverable(err)
		}
	} else {
		if pub, keyPEM, err = generateKey(g.ID); err != nil {
			return nil, nil, err
		}
	}

	src, _ := sourceAddress(s.SourceAddress) // checked by settingsOf
	if s.SourceAddressFromRequest {
		if src, err = requestSource(g.ClientIP, s.SourceAddress); err != nil {
			return nil, nil, lapse.Unrecoverable(err)
		}
	}
	perms := gossh.Permissions{Extensions: map[string]string{}}
	for _, e := range s.Extensions {
		perms.Extensions[e] = ""
	}
	if src != "" {
		perms.CriticalOptions = map[string]string{"source-address": src}
	}
	cert := &gossh.Certificate{
		Key:             pub,
		Serial:          serial,
		CertType:        gossh.UserCert,
		KeyId:           KeyID(g.User, g.ID),
		ValidPrincipals: s.Principals,
		ValidAfter:      uint64(max(now.Add(-c.skew).Unix(), 0)),
		ValidBefore:     uint64(g.ExpiresAt.Unix()),
		Permissions:     perms,
	}
	if err := cert.SignCert(rand.Reader, c.signer); err != nil {
		return nil, nil, fmt.Errorf("sign ssh certificate: %w", err)
	}
	certLine := string(gossh.MarshalAuthorizedKey(cert))
	certLine = strings.TrimSuffix(certLine, "\n") + " " + strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, cert.KeyId)
	cred := &lapse.Credentials{Kind: KindCertificate, Value: certLine, Instructions: instructions(g, s, keyPEM != nil)}
	if keyPEM != nil {
		cred.Kind = KindKeyAndCertificate
		cred.Value = string(keyPEM) + certLine
	}
	return cert, cred, nil
}

// ValidateInputs accepts only the requester's public key, checked as
// Provision will check it, so that a bad key is refused when the request
// is made.
func (c *Connector) ValidateInputs(inputs map[string]string, _ any) error {
	for k, v := range inputs {
		if k != InputPublicKey {
			return lapse.Invalidf("ssh resources take only the input %q, not %q", InputPublicKey, k)
		}
		if _, err := parsePublicKey(v); err != nil {
			return err
		}
	}
	return nil
}

var _ lapse.InputValidator = (*Connector)(nil)

// parsePublicKey reads the requester's public key input.
func parsePublicKey(line string) (gossh.PublicKey, error) {
	if len(line) > maxPublicKeyInput {
		return nil, lapse.Invalidf("%s is longer than %d bytes", InputPublicKey, maxPublicKeyInput)
	}
	pub, _, _, rest, err := gossh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, lapse.Invalidf("%s is not a public key in authorized_keys format (such as the contents of ~/.ssh/id_ed25519.pub)", InputPublicKey)
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, lapse.Invalidf("%s holds more than one key; send one", InputPublicKey)
	}
	switch pub.Type() {
	case gossh.KeyAlgoED25519, gossh.KeyAlgoECDSA256, gossh.KeyAlgoECDSA384, gossh.KeyAlgoECDSA521,
		gossh.KeyAlgoSKED25519, gossh.KeyAlgoSKECDSA256:
	case gossh.KeyAlgoRSA:
		cp, ok := pub.(gossh.CryptoPublicKey)
		if !ok {
			return nil, lapse.Invalidf("%s: unreadable RSA key", InputPublicKey)
		}
		if k, ok := cp.CryptoPublicKey().(*rsa.PublicKey); !ok || k.N.BitLen() < minRSABits {
			return nil, lapse.Invalidf("%s: RSA keys need at least %d bits", InputPublicKey, minRSABits)
		}
	default:
		return nil, lapse.Invalidf("%s: keys of type %s are not accepted; use ssh-ed25519, ecdsa or rsa", InputPublicKey, pub.Type())
	}
	return pub, nil
}

// generateKey makes an Ed25519 key pair for a grant and returns its public
// key and the private key as an OpenSSH PEM block.
func generateKey(grantID string) (gossh.PublicKey, []byte, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ssh key: %w", err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "lapse grant "+grantID)
	if err != nil {
		return nil, nil, fmt.Errorf("encode ssh key: %w", err)
	}
	sshPub, err := gossh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("encode ssh key: %w", err)
	}
	return sshPub, pem.EncodeToMemory(block), nil
}

// instructions tell the requester how to use the certificate.
func instructions(g lapse.Grant, s RoleSettings, generated bool) string {
	until := g.ExpiresAt.UTC().Format(time.RFC3339)
	login := s.Principals[0]
	short := g.ID
	if len(short) > 8 {
		short = short[:8]
	}
	if generated {
		return fmt.Sprintf("Lapse generated a key pair, shown only this once. Save the PEM block as ~/.ssh/lapse-%[1]s "+
			"(chmod 600) and the last line as ~/.ssh/lapse-%[1]s-cert.pub, then: ssh -i ~/.ssh/lapse-%[1]s %[2]s@HOST "+
			"(or `lapse ssh-cert %[3]s --key ~/.ssh/lapse-%[1]s`). Principals: %[4]s. Valid until %[5]s.",
			short, login, g.ID, strings.Join(s.Principals, ", "), until)
	}
	return fmt.Sprintf("Save the certificate beside your private key as ~/.ssh/id_ed25519-cert.pub (for key ~/.ssh/id_ed25519; "+
		"or `lapse ssh-cert %[1]s --key ~/.ssh/id_ed25519`) and ssh uses it: ssh %[2]s@HOST; "+
		"or: ssh -i ~/.ssh/id_ed25519 -o CertificateFile=CERT_FILE %[2]s@HOST. Principals: %[3]s. Valid until %[4]s.",
		g.ID, login, strings.Join(s.Principals, ", "), until)
}

// SplitCredentials returns the certificate line (in authorized_keys
// format, with a newline) and, for [KindKeyAndCertificate], the private
// key PEM block from credentials the connector issued.
func SplitCredentials(cred lapse.Credentials) (cert, privateKey []byte, err error) {
	switch cred.Kind {
	case KindCertificate:
		return []byte(strings.TrimSpace(cred.Value) + "\n"), nil, nil
	case KindKeyAndCertificate:
		block, rest := pem.Decode([]byte(cred.Value))
		if block == nil {
			return nil, nil, errors.New("ssh credentials: no private key block")
		}
		key := pem.EncodeToMemory(block)
		line := strings.TrimSpace(string(rest))
		if line == "" {
			return nil, nil, errors.New("ssh credentials: no certificate after the private key")
		}
		return []byte(line + "\n"), key, nil
	default:
		return nil, nil, fmt.Errorf("ssh credentials: kind %q is not an ssh certificate", cred.Kind)
	}
}

// Revoke puts the grant's certificate serial into the revocation list,
// with the grant's expiry so that it is dropped once the certificate has
// long expired, persists the list and, if [Config.KRLPath] is set,
// rewrites the KRL there. The grant's ExpiresAt must be the latest the
// certificate was signed with. Revoking again, or a grant never
// provisioned, succeeds.
//
// Sessions already open with the certificate are not ended: sshd checks
// the KRL at login only.
func (c *Connector) Revoke(ctx context.Context, g lapse.Grant) error {
	serial, err := serialOf(g)
	if err != nil {
		return lapse.Unrecoverable(err)
	}
	if c.store != nil {
		return c.revokeShared(ctx, g, serial)
	}
	until := int64(never)
	if !g.ExpiresAt.IsZero() {
		until = g.ExpiresAt.Unix()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.loadLocked(); err != nil {
		return err
	}
	now := c.now()
	pruned := c.rev.prune(now)
	old, had := c.rev.until[serial]
	if !had || old < until || pruned {
		if !had || old < until {
			c.rev.until[serial] = until
		}
		c.rev.version++
		if err := c.persistLocked(); err != nil {
			return err
		}
		c.log.Info("ssh certificate revoked", logGrant, g.ID, logSerial, serial, logVersion, c.rev.version, logSerials, len(c.rev.until))
	}
	if c.krlPath != "" && c.krlWritten != c.rev.version {
		if err := writeFileAtomic(c.krlPath, c.krlLocked(now), 0o644); err != nil {
			return fmt.Errorf("write KRL: %w", err)
		}
		c.krlWritten = c.rev.version
	}
	return nil
}

// VerifyGone checks that the grant's certificate is revoked: that its
// serial is in the revocation list (and in the KRL at [Config.KRLPath], if
// set), or that the grant's expiry has passed. It returns what it found.
func (c *Connector) VerifyGone(ctx context.Context, g lapse.Grant) (map[string]string, error) {
	serial, err := serialOf(g)
	if err != nil {
		return nil, lapse.Unrecoverable(err)
	}
	receipt := map[string]string{"serial": strconv.FormatUint(serial, 10)}
	if !g.ExpiresAt.IsZero() {
		receipt["valid_before"] = g.ExpiresAt.UTC().Format(time.RFC3339)
	}
	if c.store != nil {
		return c.verifyShared(ctx, g, serial, receipt)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.loadLocked(); err != nil {
		return nil, err
	}
	now := c.now()
	_, listed := c.rev.until[serial]
	if !listed {
		if !g.ExpiresAt.IsZero() && !now.Before(g.ExpiresAt) {
			receipt["check"] = "certificate expired"
			return receipt, nil
		}
		return nil, fmt.Errorf("ssh certificate serial %d of grant %s is not revoked and valid until %s", serial, g.ID, receipt["valid_before"])
	}
	receipt["check"] = "serial in KRL"
	receipt["krl_version"] = strconv.FormatUint(c.rev.version, 10)
	if c.krlPath != "" {
		return c.verifyFile(g, serial, now, receipt)
	}
	return receipt, nil
}

// verifyFile checks that serial is in the KRL file, or that the grant's
// certificate has expired, and completes the receipt.
func (c *Connector) verifyFile(g lapse.Grant, serial uint64, now time.Time, receipt map[string]string) (map[string]string, error) {
	b, err := os.ReadFile(c.krlPath)
	if err != nil {
		return nil, fmt.Errorf("read KRL: %w", err)
	}
	k, err := parseKRL(b)
	if err != nil {
		return nil, fmt.Errorf("read KRL %s: %w", filepath.Base(c.krlPath), err)
	}
	found := false
	for _, s := range k.Serials[string(c.caBlob)] {
		found = found || s == serial
	}
	if !found {
		if !now.Before(g.ExpiresAt) {
			receipt["check"] = "certificate expired"
			return receipt, nil
		}
		return nil, fmt.Errorf("ssh certificate serial %d of grant %s is revoked but not yet in the KRL file", serial, g.ID)
	}
	receipt["check"] = "serial in KRL file"
	receipt["krl_version"] = strconv.FormatUint(k.Version, 10)
	return receipt, nil
}

// List returns nothing: certificates live with their holders, not in a
// target that could be asked for them.
func (c *Connector) List(context.Context) ([]lapse.Existing, error) { return nil, nil }

// KRL returns the current key revocation list in OpenSSH's binary format
// (PROTOCOL.krl), for sshd's RevokedKeys. It lists the serials of revoked
// certificates that have not yet expired, plus [PruneGrace].
func (c *Connector) KRL(ctx context.Context) ([]byte, error) {
	if c.store != nil {
		b, _, err := c.sharedKRL(ctx)
		return b, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.loadLocked(); err != nil {
		return nil, err
	}
	return c.krlLocked(c.now()), nil
}

// WriteKRL writes the current KRL to path atomically, with mode 0644:
// sshd reading it sees the old list or the new one.
func (c *Connector) WriteKRL(ctx context.Context, path string) error {
	b, err := c.KRL(ctx)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, b, 0o644); err != nil {
		return fmt.Errorf("write KRL: %w", err)
	}
	return nil
}

func (c *Connector) krlLocked(now time.Time) []byte {
	return encodeKRL(c.caBlob, c.rev.version, now, "lapse"+commentName(c.name), c.rev.current(now))
}

// isRevoked reports whether serial is in the revocation list.
func (c *Connector) isRevoked(ctx context.Context, serial uint64) (bool, error) {
	if c.store != nil {
		c.mu.Lock()
		err := c.sharedReady(ctx)
		c.mu.Unlock()
		if err != nil {
			return false, err
		}
		_, err = c.store.RevokedSerial(ctx, c.authority(), serial)
		if errors.Is(err, lapse.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.loadLocked(); err != nil {
		return false, err
	}
	_, ok := c.rev.until[serial]
	return ok, nil
}

func (c *Connector) loadLocked() error {
	if c.rev != nil {
		return nil
	}
	r, err := loadRevocations(c.statePath)
	if err != nil {
		return err
	}
	c.rev = r
	return nil
}

// persistLocked writes the revocation list. If that fails, the list is
// read again from disk at the next use, so that memory never runs ahead
// of what survives a restart.
func (c *Connector) persistLocked() error {
	err := os.MkdirAll(filepath.Dir(c.statePath), 0o700)
	if err == nil {
		err = writeFileAtomic(c.statePath, c.rev.marshal(), 0o600)
	}
	if err != nil {
		c.rev = nil
		return fmt.Errorf("write ssh revocations: %w", err)
	}
	return nil
}
