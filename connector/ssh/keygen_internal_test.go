package ssh

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/lapse-access/lapse"
)

// TestKRLLargeReadByKeygen checks with OpenSSH's ssh-keygen that a KRL
// with 100,000 serials revokes a certificate whose serial is among them
// and no other.
func TestKRLLargeReadByKeygen(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not found")
	}
	now := time.Now()
	c := newTestConnector(t, &now)
	c.rev = &revocations{until: map[uint64]int64{}}
	for i := range 100_000 {
		c.rev.until[Serial(strconv.Itoa(i))] = now.Add(time.Hour).Unix()
	}
	dir := t.TempDir()
	krl := filepath.Join(dir, "krl")
	if err := c.WriteKRL(t.Context(), krl); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		id      string
		revoked bool
	}{{"4242", true}, {"not-revoked", false}} {
		p, err := c.Provision(t.Context(), testGrant(tt.id, now.Add(time.Hour)))
		if tt.revoked {
			// Provision refuses a revoked serial; sign directly.
			_, cred, err2 := c.signForTest(tt.id, now)
			if err2 != nil {
				t.Fatal(err2)
			}
			p.Credentials, err = cred, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		cert, _, _ := SplitCredentials(*p.Credentials)
		file := filepath.Join(dir, tt.id+"-cert.pub")
		if err := os.WriteFile(file, cert, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(keygen, "-Q", "-f", krl, file).CombinedOutput()
		if got := strings.Contains(string(out), "REVOKED"); got != tt.revoked || (err == nil) == tt.revoked {
			t.Errorf("ssh-keygen -Q for grant %s: %v\n%s", tt.id, err, out)
		}
	}
}

// signForTest signs a certificate for a grant without the revocation
// check that Provision makes.
func (c *Connector) signForTest(id string, now time.Time) (*gossh.Certificate, *lapse.Credentials, error) {
	saved := c.rev
	c.rev = &revocations{until: map[uint64]int64{}}
	defer func() { c.rev = saved }()
	return c.issue(context.Background(), testGrant(id, now.Add(time.Hour)))
}
