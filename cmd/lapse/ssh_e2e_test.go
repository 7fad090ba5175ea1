package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	sshc "github.com/lapse-access/lapse/connector/ssh"
	"github.com/lapse-access/lapse/lapsetest/sshdtest"
)

// TestSSHCertificateGrant drives an ssh resource end to end against a real
// sshd: a certificate for the requester's own key logs in with the role's
// principal; after revocation the KRL that Lapse writes refuses it.
func TestSSHCertificateGrant(t *testing.T) {
	if testing.Short() {
		t.Skip("sshd end-to-end test skipped in -short mode")
	}
	dir := t.TempDir()
	caKeyFile := filepath.Join(dir, "ssh_ca.key")
	ca, err := sshc.LoadOrCreateCAKey(caKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	caSigner, err := ssh.NewSignerFromSigner(ca)
	if err != nil {
		t.Fatal(err)
	}
	sshd := sshdtest.Start(t, sshdtest.Options{CAKeys: ssh.MarshalAuthorizedKey(caSigner.PublicKey()), Principals: []string{"deploy"}})

	base, err := os.ReadFile(writeConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(base), "connectors:\n", "connectors:\n  - name: ssh-ca\n    type: ssh\n    ca_key_file: "+caKeyFile+"\n    krl_file: "+sshd.KRLPath+"\n", 1) + `  - name: web
    connector: ssh-ca
    roles:
      - name: deploy
        principals: [deploy]
        extensions: [permit-pty]
        max_duration: 1h
        approvals: 0
        requesters: [engineering]
      - name: pinned
        principals: [deploy]
        source_address_from_request: true
        max_duration: 1h
        approvals: 0
        requesters: [engineering]
      - name: audit
        principals: [auditor]
        max_duration: 1h
        approvals: 0
        requesters: [engineering]
integrations:
  - name: bastion
    token_sha256: ` + hash("tok-bastion") + "\n"
	cfgPath := filepath.Join(dir, "lapse-ssh.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "--config", cfgPath, "--data", filepath.Join(dir, "data"))

	// The CA key sshd trusts is the one Lapse serves.
	req, _ := http.NewRequest(http.MethodGet, s.url+"/v1/ssh/ca.pub", nil)
	req.Header.Set("Authorization", "Bearer tok-carol")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if servedKey, _, _, _, err := ssh.ParseAuthorizedKey(served); err != nil || string(servedKey.Marshal()) != string(caSigner.PublicKey().Marshal()) {
		t.Fatalf("served CA key %q", served)
	}

	// alice's own key pair.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := ssh.NewPublicKey(pub)
	keyFile := filepath.Join(dir, "id_ed25519")
	block, err := ssh.MarshalPrivateKey(priv, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile+".pub", ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := s.cli(t, "alice", "request", "web", "--role", "deploy", "--for", "1h", "--reason", "deploy 42", "--ssh-key", keyFile)
	if code == 0 {
		t.Fatalf("a private key was accepted as --ssh-key:\n%s", out)
	}
	var r api.Request
	s.cliJSON(t, "alice", &r, "request", "web", "--role", "deploy", "--for", "1h", "--reason", "deploy 42", "--ssh-key", keyFile+".pub")
	if r.State != lapse.StateActive || r.Outputs["ssh_certificate"] == "" {
		t.Fatalf("request: %+v", r)
	}
	out, code = s.cli(t, "alice", "ssh-cert", r.ID, "--key", keyFile)
	if code != 0 {
		t.Fatalf("ssh-cert: %s", out)
	}
	certBytes, err := os.ReadFile(keyFile + "-cert.pub")
	if err != nil {
		t.Fatal(err)
	}
	certKey, _, _, _, err := ssh.ParseAuthorizedKey(certBytes)
	if err != nil {
		t.Fatal(err)
	}
	cert := certKey.(*ssh.Certificate)
	if cert.ValidBefore != uint64(r.ExpiresAt.Unix()) || len(cert.ValidPrincipals) != 1 || cert.ValidPrincipals[0] != "deploy" {
		t.Fatalf("certificate: principals %v valid before %d, want deploy and %d", cert.ValidPrincipals, cert.ValidBefore, r.ExpiresAt.Unix())
	}
	keySigner, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	certSigner, err := ssh.NewCertSigner(cert, keySigner)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if got, err := sshd.Run(ctx, certSigner, "echo ok"); err != nil || strings.TrimSpace(got) != "ok" {
		t.Fatalf("login inside the window: %q %v\n%s", got, err, sshd.LogTail(20))
	}

	// sshd's log of the login, fed to `lapse activity sshd`, becomes
	// activity under the grant.
	feed := exec.Command(lapseBinary(t), "activity", "sshd", "--host", "web-1")
	feed.Env = append(os.Environ(), "LAPSE_SERVER="+s.url, "LAPSE_TOKEN=tok-bastion")
	feed.Stdin = strings.NewReader(sshd.LogTail(200))
	if out, err := feed.CombinedOutput(); err != nil || !strings.Contains(string(out), "login of alice from 127.0.0.1 under "+r.ID) {
		t.Fatalf("lapse activity sshd: %v\n%s\nsshd log:\n%s", err, out, sshd.LogTail(20))
	}
	var logins []lapse.AuditEvent
	s.cliJSON(t, "alice", &logins, "audit", "--request", r.ID, "--type", lapse.EvActivity)
	var login lapse.Activity
	if len(logins) != 1 || logins[0].Actor != "bastion" || json.Unmarshal(logins[0].Data, &login) != nil ||
		login.Kind != "login" || login.Details["host"] != "web-1" || login.Details["client_addr"] != "127.0.0.1" {
		t.Fatalf("login records: %+v", logins)
	}

	// A certificate bound to the request's address names it.
	var pinned api.Request
	s.cliJSON(t, "alice", &pinned, "request", "web", "--role", "pinned", "--for", "1h", "--reason", "pinned", "--ssh-key", keyFile+".pub")
	pinnedKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pinned.Outputs["ssh_certificate"]))
	if err != nil {
		t.Fatal(err)
	}
	if src := pinnedKey.(*ssh.Certificate).CriticalOptions["source-address"]; src != "127.0.0.1/32" || pinned.ClientIP != "127.0.0.1" {
		t.Fatalf("pinned certificate: source-address %q, request from %q", src, pinned.ClientIP)
	}
	pinnedSigner, _ := ssh.NewCertSigner(pinnedKey.(*ssh.Certificate), keySigner)
	if got, err := sshd.Run(ctx, pinnedSigner, "echo ok"); err != nil || strings.TrimSpace(got) != "ok" {
		t.Fatalf("login with the pinned certificate from its address: %q %v", got, err)
	}

	// A certificate for another principal is refused.
	var other api.Request
	s.cliJSON(t, "alice", &other, "request", "web", "--role", "audit", "--for", "1h", "--reason", "look", "--ssh-key", keyFile+".pub")
	otherKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(other.Outputs["ssh_certificate"]))
	if err != nil {
		t.Fatal(err)
	}
	otherSigner, _ := ssh.NewCertSigner(otherKey.(*ssh.Certificate), keySigner)
	if _, err := sshd.Run(ctx, otherSigner, "echo ok"); err == nil {
		t.Fatal("a certificate for another principal logged in")
	}

	// Revoked: Lapse writes the KRL that sshd reads, and serves it.
	var rv api.Request
	s.cliJSON(t, "carol", &rv, "revoke", r.ID, "--reason", "deploy done")
	if rv.State != lapse.StateEnded {
		t.Fatalf("revoke: %+v", rv)
	}
	if _, err := sshd.Run(ctx, certSigner, "echo ok"); err == nil {
		t.Fatal("a revoked certificate logged in")
	}
	req, _ = http.NewRequest(http.MethodGet, s.url+"/v1/ssh/krl", nil)
	req.Header.Set("Authorization", "Bearer tok-alice")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	krl, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(krl), "SSHKRL\n\x00") {
		t.Fatalf("served KRL: %d %q", resp.StatusCode, krl[:min(len(krl), 16)])
	}
	// A bad public key is refused at once and stores nothing.
	bad := filepath.Join(dir, "bad.pub")
	_ = os.WriteFile(bad, []byte("ssh-ed25519 not-a-key"), 0o644)
	out, code = s.cli(t, "alice", "request", "web", "--role", "deploy", "--for", "1h", "--reason", "x", "--ssh-key", bad)
	if code != 1 || !strings.Contains(out, "not a public key") {
		t.Fatalf("bad key: exit %d %s", code, out)
	}
}
