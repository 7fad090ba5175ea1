package ssh_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector/ssh"
	"github.com/lapse-access/lapse/lapsetest/sshdtest"
)

// fixture is a connector with its own CA and an sshd that trusts it and
// reads the connector's KRL file.
type fixture struct {
	conn *ssh.Connector
	srv  *sshdtest.Server
	key  gossh.Signer // the requester's key
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	ca, err := ssh.LoadOrCreateCAKey(filepath.Join(dir, "ca_key"))
	if err != nil {
		t.Fatal(err)
	}
	probe, err := ssh.New(ssh.Config{Name: "ssh-ca", CAKey: ca, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	srv := sshdtest.Start(t, sshdtest.Options{CAKeys: probe.CAPublicKey(), Principals: []string{"deploy"}})
	conn, err := ssh.New(ssh.Config{Name: "ssh-ca", CAKey: ca, StateDir: filepath.Join(dir, "state"), KRLPath: srv.KRLPath})
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{conn: conn, srv: srv, key: key}
}

func (f *fixture) grant(id string, principals []string, expires time.Time) lapse.Grant {
	return lapse.Grant{
		ID: id, User: "alice", Resource: "web", Role: "deploy", ExpiresAt: expires,
		Settings: ssh.RoleSettings{Principals: principals},
		Inputs:   map[string]string{ssh.InputPublicKey: string(gossh.MarshalAuthorizedKey(f.key.PublicKey()))},
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// signerFor returns a signer that offers the certificate in cred with
// key, or with the private key cred carries.
func signerFor(t *testing.T, cred *lapse.Credentials, key gossh.Signer) gossh.Signer {
	t.Helper()
	certLine, priv, err := ssh.SplitCredentials(*cred)
	if err != nil {
		t.Fatal(err)
	}
	if priv != nil {
		if key, err = gossh.ParsePrivateKey(priv); err != nil {
			t.Fatalf("parse generated key: %v", err)
		}
	}
	pub, _, _, _, err := gossh.ParseAuthorizedKey(certLine)
	if err != nil {
		t.Fatalf("parse certificate: %v", err)
	}
	cert, ok := pub.(*gossh.Certificate)
	if !ok {
		t.Fatalf("credentials hold a %s, not a certificate", pub.Type())
	}
	s, err := gossh.NewCertSigner(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) login(t *testing.T, s gossh.Signer) error {
	t.Helper()
	out, err := f.srv.Run(ctxFor(t), s, "echo ok")
	if err == nil && strings.TrimSpace(out) != "ok" {
		return errors.New("echo ok printed " + strconv.Quote(out))
	}
	return err
}

func TestLogin(t *testing.T) {
	f := newFixture(t)
	ctx := ctxFor(t)
	g := f.grant("grant-login", []string{"deploy"}, time.Now().Add(time.Hour))
	p, err := f.conn.Provision(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if p.Ref != strconv.FormatUint(ssh.Serial(g.ID), 10) || p.Credentials.Kind != ssh.KindCertificate {
		t.Fatalf("Provision = ref %q kind %q", p.Ref, p.Credentials.Kind)
	}
	if err := f.login(t, signerFor(t, p.Credentials, f.key)); err != nil {
		t.Fatalf("login with the certificate: %v", err)
	}

	other := f.grant("grant-other", []string{"root", "ops"}, time.Now().Add(time.Hour))
	po, err := f.conn.Provision(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.login(t, signerFor(t, po.Credentials, f.key)); err == nil {
		t.Error("a certificate for principals sshd does not accept for the user logged in")
	}
}

func TestGeneratedKeyPair(t *testing.T) {
	f := newFixture(t)
	g := f.grant("grant-generated", []string{"deploy"}, time.Now().Add(time.Hour))
	delete(g.Inputs, ssh.InputPublicKey)
	p, err := f.conn.Provision(ctxFor(t), g)
	if err != nil {
		t.Fatal(err)
	}
	if p.Credentials.Kind != ssh.KindKeyAndCertificate {
		t.Fatalf("kind %q, want %q", p.Credentials.Kind, ssh.KindKeyAndCertificate)
	}
	if err := f.login(t, signerFor(t, p.Credentials, nil)); err != nil {
		t.Fatalf("login with the generated key pair: %v", err)
	}
}

func TestExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a certificate to expire")
	}
	f := newFixture(t)
	// ValidBefore has a resolution of a second: 2 s from now is 1-2 s.
	expires := time.Now().Add(2 * time.Second).Truncate(time.Second)
	p, err := f.conn.Provision(ctxFor(t), f.grant("grant-expiry", []string{"deploy"}, expires))
	if err != nil {
		t.Fatal(err)
	}
	s := signerFor(t, p.Credentials, f.key)
	if err := f.login(t, s); err != nil {
		t.Fatalf("login inside the window: %v", err)
	}
	time.Sleep(time.Until(expires) + 1100*time.Millisecond)
	if err := f.login(t, s); err == nil {
		t.Error("login works after ValidBefore")
	}
}

func TestRevoke(t *testing.T) {
	f := newFixture(t)
	ctx := ctxFor(t)
	g := f.grant("grant-revoke", []string{"deploy"}, time.Now().Add(time.Hour))
	p, err := f.conn.Provision(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	g.Ref = p.Ref
	s := signerFor(t, p.Credentials, f.key)
	if err := f.login(t, s); err != nil {
		t.Fatalf("login before Revoke: %v", err)
	}
	if _, err := f.conn.VerifyGone(ctx, g); err == nil {
		t.Error("VerifyGone succeeded while the certificate is valid")
	}
	for range 2 {
		if err := f.conn.Revoke(ctx, g); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
	}
	if err := f.login(t, s); err == nil {
		t.Error("login works after Revoke")
	}
	receipt, err := f.conn.VerifyGone(ctx, g)
	if err != nil {
		t.Fatalf("VerifyGone: %v", err)
	}
	if receipt["serial"] != p.Ref || receipt["check"] != "serial in KRL file" {
		t.Errorf("receipt %v", receipt)
	}
	if _, err := f.conn.Provision(ctx, g); !lapse.IsUnrecoverable(err) {
		t.Errorf("Provision after Revoke = %v, want an unrecoverable error", err)
	}

	// ssh-keygen reads the same KRL.
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not found")
	}
	certLine, _, _ := ssh.SplitCredentials(*p.Credentials)
	certFile := filepath.Join(t.TempDir(), "id-cert.pub")
	if err := os.WriteFile(certFile, certLine, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(keygen, "-Q", "-f", f.srv.KRLPath, certFile).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "REVOKED") {
		t.Errorf("ssh-keygen -Q does not find the certificate revoked: %v\n%s", err, out)
	}
}

func TestExtend(t *testing.T) {
	f := newFixture(t)
	ctx := ctxFor(t)
	g := f.grant("grant-extend", []string{"deploy"}, time.Now().Add(time.Hour))
	if _, err := f.conn.Provision(ctx, g); err != nil {
		t.Fatal(err)
	}
	g.ExpiresAt = g.ExpiresAt.Add(time.Hour)
	cred, err := f.conn.Extend(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	s := signerFor(t, cred, f.key)
	cert := s.PublicKey().(*gossh.Certificate)
	if cert.ValidBefore != uint64(g.ExpiresAt.Unix()) || cert.Serial != ssh.Serial(g.ID) {
		t.Errorf("extended certificate: valid before %d serial %d", cert.ValidBefore, cert.Serial)
	}
	if err := f.login(t, s); err != nil {
		t.Fatalf("login with the extended certificate: %v", err)
	}
}
