package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"go.uber.org/goleak"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the name of the superuser that initdb creates.
const Superuser = "pgtest"

// InstallHint says how to install the server binaries.
const InstallHint = "PostgreSQL server binaries not found; install them with: apt-get install postgresql"

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 60 * time.Second

// errNoBinaries reports that initdb or postgres is missing.
var errNoBinaries = errors.New(InstallHint)

// Server is one running PostgreSQL server, reachable on Host:Port as
// [Superuser] with Password.
type Server struct {
	// Host is the loopback address the server listens on.
	Host string
	// Port is the TCP port; it stays the same across [Server.Stop] and
	// [Server.Start].
	Port int
	// User is the superuser, [Superuser].
	User string
	// Password is the superuser's password, random per server.
	Password string
	// Database is the database that exists from the start, "postgres".
	Database string
	// Version is the server's major version, such as 15.
	Version int

	bin     binaries
	dir     string // removed on close; holds data/, the socket, the log
	dataDir string
	logPath string
	cred    *syscall.Credential

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{} // closed when proc has exited

	dbSeq atomic.Int64
}

// Start starts a server for t and stops and removes it when t ends. It
// skips t (or fails it when CI is set) if the server binaries are missing.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := launch()
	if err != nil {
		failOrSkip(t, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("PostgreSQL log (last lines):\n%s", s.logTail(40))
		}
		if err := s.close(); err != nil {
			t.Errorf("remove PostgreSQL server: %v", err)
		}
	})
	return s
}

func failOrSkip(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, errNoBinaries) && os.Getenv("CI") == "" {
		t.Skip(InstallHint)
	}
	t.Fatalf("start PostgreSQL: %v", err)
}

// shared is the server that Shared hands out, removed by Main.
var shared struct {
	mu     sync.Mutex
	inMain bool
	srv    *Server
	err    error
}

// Main runs the tests of a package and then removes the server that
// [Shared] started, if any. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		if err := shared.srv.close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: remove shared PostgreSQL server: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		shared.srv = nil
	}
	return code
}

// Shared returns the package's shared server, starting it on first use.
// The package's TestMain must call [Main]. Tests that share the server must
// not stop it; an outage test takes its own server from [Start]. Each test
// can take a database of its own with [Server.CreateDatabase], but roles
// belong to the whole server.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		t.Fatal("pgtest.Shared needs TestMain to call pgtest.Main")
	}
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = launch()
	}
	if shared.err != nil {
		failOrSkip(t, shared.err)
	}
	return shared.srv
}

// launch creates, starts and returns a server.
func launch() (*Server, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{
		Host:     "127.0.0.1",
		User:     Superuser,
		Database: "postgres",
		Version:  bin.version,
		bin:      bin,
		dir:      dir,
		dataDir:  filepath.Join(dir, "data"),
		logPath:  filepath.Join(dir, "postgres.log"),
		cred:     cred,
	}
	if err := s.initdb(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// Another process may take the free port before the server binds it;
	// then try another.
	for attempt := 0; ; attempt++ {
		if s.Port, err = freePort(); err != nil {
			break
		}
		err = s.start()
		if err == nil || attempt == 4 || !strings.Contains(s.logTail(20), "could not bind") {
			break
		}
	}
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, s.logTail(20))
		_ = s.close()
		return nil, err
	}
	return s, nil
}

// initdb creates the cluster in s.dataDir.
func (s *Server) initdb() error {
	var pw [16]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return err
	}
	s.Password = hex.EncodeToString(pw[:])
	pwFile := filepath.Join(s.dir, "pwfile")
	if err := os.WriteFile(pwFile, []byte(s.Password+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwFile)
	if s.cred != nil {
		for _, p := range []string{s.dir, pwFile} {
			if err := os.Chown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				return err
			}
		}
	}
	if err := os.Chmod(s.dir, 0o700); err != nil {
		return err
	}
	cmd := exec.Command(s.bin.initdb,
		"--pgdata", s.dataDir,
		"--username", Superuser,
		"--pwfile", pwFile,
		"--auth-local", "trust",
		"--auth-host", "scram-sha-256",
		"--encoding", "UTF8",
		"--no-locale",
		"--no-sync",
	)
	cmd.Dir = s.dir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = sysProcAttr(s.cred)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

// serverEnv is the environment of initdb and postgres: the test's own,
// without libpq variables that would change their behaviour.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// Start starts the server again after [Server.Stop], on the same port and
// data directory, and waits until it accepts connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if err := s.start(); err != nil {
		t.Fatalf("start PostgreSQL: %v\n%s", err, s.logTail(20))
	}
}

// Stop shuts the server down (fast shutdown: open sessions are ended) and
// waits until it has exited. The data directory stays for [Server.Start].
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(syscall.SIGINT); err != nil {
		t.Fatalf("stop PostgreSQL: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("already running")
	}
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(s.bin.postgres,
		"-D", s.dataDir,
		"-p", strconv.Itoa(s.Port),
		"-h", s.Host,
		"-k", s.dir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "shared_buffers=16MB",
		"-c", "max_connections=200",
		"-c", "log_line_prefix=%m [%p] ",
	)
	cmd.Dir = s.dir
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr(s.cred)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.proc, s.done = cmd, done
	if err := s.waitReady(done); err != nil {
		_ = s.signalAndWait(syscall.SIGQUIT)
		return err
	}
	return nil
}

// waitReady waits until the server accepts a superuser login over TCP.
func (s *Server) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.AdminDSN())
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return nil
		}
		select {
		case <-done:
			return errors.New("postgres exited during startup")
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after %s: %w", startTimeout, err)
		}
	}
}

func (s *Server) stop(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signalAndWait(sig)
}

// signalAndWait sends sig to the postmaster and waits for it to exit,
// killing it if a shutdown takes too long. s.mu is held.
func (s *Server) signalAndWait(sig syscall.Signal) error {
	if s.proc == nil {
		return nil
	}
	defer func() { s.proc, s.done = nil, nil }()
	if err := s.proc.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-s.done:
		return nil
	case <-time.After(30 * time.Second):
	}
	_ = s.proc.Process.Kill()
	<-s.done
	return fmt.Errorf("postgres did not stop within 30s after %s; killed it", sig)
}

// close stops the server and removes its directory.
func (s *Server) close() error {
	err := s.stop(syscall.SIGINT)
	return errors.Join(err, os.RemoveAll(s.dir))
}

// logTail returns the last n lines of the server log.
func (s *Server) logTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return ""
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// DSN returns a postgres:// URL that logs user in to database over TCP.
func (s *Server) DSN(user, password, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// AdminDSN returns the superuser's URL for [Server.Database].
func (s *Server) AdminDSN() string { return s.DSN(s.User, s.Password, s.Database) }

// AdminDSNFor returns the superuser's URL for database.
func (s *Server) AdminDSNFor(database string) string { return s.DSN(s.User, s.Password, database) }

// Open connects user to database over TCP.
func (s *Server) Open(ctx context.Context, user, password, database string) (*pgx.Conn, error) {
	return pgx.Connect(ctx, s.DSN(user, password, database))
}

// Conn connects user to database over TCP and closes the connection when t
// ends. It fails t if the login fails.
func (s *Server) Conn(t testing.TB, user, password, database string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := s.Open(ctx, user, password, database)
	if err != nil {
		t.Fatalf("connect to PostgreSQL as %s: %v", user, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// Admin connects the superuser to database, like [Server.Conn].
func (s *Server) Admin(t testing.TB, database string) *pgx.Conn {
	t.Helper()
	return s.Conn(t, s.User, s.Password, database)
}

// CreateDatabase creates an empty database with a name unique on s and
// returns the name. The database stays until the server is removed.
func (s *Server) CreateDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", s.dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := s.Open(ctx, s.User, s.Password, s.Database)
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	return name
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

// serverCredential returns the user to run the server as: nil (the current
// user) unless the tests run as root, which PostgreSQL refuses.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var errs []error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			errs = append(errs, err)
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("running as root and found no user to run PostgreSQL as: %w", errors.Join(errs...))
}

// MainNoLeaks is [Main] followed by a check that the tests left no
// goroutine running. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.MainNoLeaks(m)) }
func MainNoLeaks(m *testing.M) int {
	code := Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutines left behind: %v\n", err)
			code = 1
		}
	}
	return code
}
