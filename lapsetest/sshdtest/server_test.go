package sshdtest_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lapse-access/lapse/lapsetest/sshdtest"
)

func TestCertificateLogin(t *testing.T) {
	_, caKey, _ := ed25519.GenerateKey(rand.Reader)
	ca, err := ssh.NewSignerFromKey(caKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := sshdtest.Start(t, sshdtest.Options{CAKeys: ssh.MarshalAuthorizedKey(ca.PublicKey()), Principals: []string{"deploy"}})

	certSigner := func(principal string) ssh.Signer {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		s, err := ssh.NewSignerFromKey(key)
		if err != nil {
			t.Fatal(err)
		}
		cert := &ssh.Certificate{
			Key: s.PublicKey(), Serial: 7, CertType: ssh.UserCert, KeyId: "test",
			ValidPrincipals: []string{principal},
			ValidAfter:      uint64(time.Now().Add(-time.Minute).Unix()),
			ValidBefore:     uint64(time.Now().Add(time.Hour).Unix()),
		}
		if err := cert.SignCert(rand.Reader, ca); err != nil {
			t.Fatal(err)
		}
		cs, err := ssh.NewCertSigner(cert, s)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	out, err := srv.Run(ctx, certSigner("deploy"), "echo ok")
	if err != nil || strings.TrimSpace(out) != "ok" {
		t.Fatalf("login with a certificate for deploy: %q, %v", out, err)
	}
	if _, err := srv.Run(ctx, certSigner("other"), "echo ok"); err == nil {
		t.Error("a certificate for another principal logged in")
	}
	_, plain, _ := ed25519.GenerateKey(rand.Reader)
	ps, _ := ssh.NewSignerFromKey(plain)
	if _, err := srv.Run(ctx, ps, "echo ok"); err == nil {
		t.Error("a plain key logged in")
	}
}
