package sshdtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// InstallHint says how to install sshd.
const InstallHint = "sshd not found; install it with: apt-get install openssh-server"

// startTimeout bounds how long sshd may take to accept connections.
const startTimeout = 20 * time.Second

// errNoSSHD reports that sshd is missing.
var errNoSSHD = errors.New(InstallHint)

// Options configure a server.
type Options struct {
	// CAKeys are the user CA public keys that sshd trusts, in
	// authorized_keys format, one per line. Required.
	CAKeys []byte
	// Principals are the certificate principals that sshd accepts for
	// [Server.User]. Empty means sshd's default: the certificate must
	// name the login user itself.
	Principals []string
	// KRL is the first contents of the revocation list. Empty means an
	// empty file, which revokes nothing.
	KRL []byte
}

// Server is one running sshd.
type Server struct {
	// Addr is the host:port sshd listens on.
	Addr string
	// User is the login user: the user the test runs as.
	User string
	// HostKey is the server's host key, for ssh.FixedHostKey.
	HostKey ssh.PublicKey
	// KRLPath is the file sshd reads as RevokedKeys.
	KRLPath string

	dir  string
	cmd  *exec.Cmd
	done chan struct{}

	mu  sync.Mutex
	log bytes.Buffer
}

// Start starts sshd for t and stops and removes it when t ends. It skips t
// (or fails it when CI is set) if sshd is missing.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := launch(opts)
	if err != nil {
		if errors.Is(err, errNoSSHD) && os.Getenv("CI") == "" {
			t.Skip(InstallHint)
		}
		t.Fatalf("start sshd: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sshd log (last lines):\n%s", s.LogTail(30))
		}
		if err := s.close(); err != nil {
			t.Errorf("remove sshd: %v", err)
		}
	})
	return s
}

// findSSHD returns the path of sshd, which must be absolute: sshd refuses
// to start otherwise, as it re-executes itself.
func findSSHD() (string, error) {
	if _, err := exec.LookPath("/usr/sbin/sshd"); err == nil {
		return "/usr/sbin/sshd", nil
	}
	if p, err := exec.LookPath("sshd"); err == nil {
		return filepath.Abs(p)
	}
	return "", errNoSSHD
}

func launch(opts Options) (*Server, error) {
	bin, err := findSSHD()
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(opts.CAKeys)) == 0 {
		return nil, errors.New("no CA keys to trust")
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		// The privilege separation directory, which Debian's packaging
		// creates at boot.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "sshdtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{User: u.Username, dir: dir, KRLPath: filepath.Join(dir, "revoked.krl")}
	if err := s.writeFiles(opts); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// Another process may take the free port before sshd binds it; then
	// try another.
	for attempt := 0; ; attempt++ {
		var port int
		if port, err = freePort(); err != nil {
			break
		}
		s.Addr = fmt.Sprintf("127.0.0.1:%d", port)
		err = s.start(bin)
		if err == nil || attempt == 4 || !strings.Contains(s.LogTail(10), "Address already in use") {
			break
		}
	}
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, s.LogTail(20))
		_ = s.close()
		return nil, err
	}
	return s, nil
}

// writeFiles writes the host key, the CA keys, the principals, the KRL and
// the config; the config names the port, which start fills in.
func (s *Server) writeFiles(opts Options) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	block, err := ssh.MarshalPrivateKey(priv, "sshdtest host key")
	if err != nil {
		return err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return err
	}
	s.HostKey = signer.PublicKey()
	files := map[string][]byte{
		"host_ed25519": pem.EncodeToMemory(block),
		"ca.pub":       opts.CAKeys,
		"revoked.krl":  opts.KRL,
	}
	if len(opts.Principals) > 0 {
		files[filepath.Join("principals", s.User)] = []byte(strings.Join(opts.Principals, "\n") + "\n")
	}
	if err := os.Mkdir(filepath.Join(s.dir, "principals"), 0o755); err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return os.Chmod(s.dir, 0o755)
}

func (s *Server) config() string {
	lines := []string{
		"ListenAddress " + s.Addr,
		"HostKey " + filepath.Join(s.dir, "host_ed25519"),
		"PidFile " + filepath.Join(s.dir, "sshd.pid"),
		"TrustedUserCAKeys " + filepath.Join(s.dir, "ca.pub"),
		"AuthorizedPrincipalsFile " + filepath.Join(s.dir, "principals", "%u"),
		"RevokedKeys " + s.KRLPath,
		"AuthorizedKeysFile none",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"HostbasedAuthentication no",
		"PermitRootLogin prohibit-password",
		"UsePAM no",
		// The files live under the temporary directory, which others may
		// write to.
		"StrictModes no",
		"LogLevel VERBOSE",
		"MaxStartups 100",
	}
	return strings.Join(lines, "\n") + "\n"
}

func (s *Server) start(bin string) error {
	cfg := filepath.Join(s.dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(s.config()), 0o600); err != nil {
		return err
	}
	s.mu.Lock()
	s.log.Reset()
	s.mu.Unlock()
	cmd := exec.Command(bin, "-D", "-e", "-f", cfg)
	cmd.Stdout = (*logWriter)(s)
	cmd.Stderr = (*logWriter)(s)
	// Its own process group, so that close also ends the per-connection
	// processes; and stopped if the test process dies.
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		if banner(s.Addr) {
			return nil
		}
		select {
		case <-s.done:
			s.cmd = nil
			return errors.New("sshd exited")
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd did not accept connections within %s", startTimeout)
		}
	}
}

// banner reports whether an SSH server answers at addr.
func banner(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	b := make([]byte, 4)
	n, _ := c.Read(b)
	return string(b[:n]) == "SSH-"
}

type logWriter Server

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.Write(p)
}

// LogTail returns the last n lines that sshd logged.
func (s *Server) LogTail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	lines := strings.Split(strings.TrimRight(s.log.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WriteKRL replaces the revocation list that sshd reads, atomically. sshd
// reads it at every login.
func (s *Server) WriteKRL(t testing.TB, krl []byte) {
	t.Helper()
	tmp := s.KRLPath + ".tmp"
	if err := os.WriteFile(tmp, krl, 0o600); err != nil {
		t.Fatalf("write KRL: %v", err)
	}
	if err := os.Rename(tmp, s.KRLPath); err != nil {
		t.Fatalf("write KRL: %v", err)
	}
}

// Dial logs in as [Server.User] with signer, which is normally a
// certificate signer from ssh.NewCertSigner.
func (s *Server) Dial(ctx context.Context, signer ssh.Signer) (*ssh.Client, error) {
	cfg := &ssh.ClientConfig{
		User:            s.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey),
		Timeout:         10 * time.Second,
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, s.Addr, cfg)
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// Run logs in with signer, runs command and returns its output.
func (s *Server) Run(ctx context.Context, signer ssh.Signer, command string) (string, error) {
	c, err := s.Dial(ctx, signer)
	if err != nil {
		return "", err
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer sess.Close()
	out, err := sess.CombinedOutput(command)
	return string(out), err
}

// close stops sshd and removes its directory.
func (s *Server) close() error {
	if s.cmd != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
		s.cmd = nil
	}
	return os.RemoveAll(s.dir)
}

// freePort returns a TCP port on the loopback interface that was free a
// moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
