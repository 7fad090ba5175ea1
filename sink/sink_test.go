package sink_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/lapsetest"
	"github.com/lapse-access/lapse/sink"
	"github.com/lapse-access/lapse/sqlstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

// appendEvents appends n events to st, one transaction each.
func appendEvents(t testing.TB, st lapse.Store, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		r := lapse.Request{ID: fmt.Sprintf("r%d", i), User: "alice", Resource: "orders-db", Role: "read", State: lapse.StatePending}
		ev := lapse.NewAuditEvent(lapse.EvRequested, "alice", "", r, map[string]any{"reason": `INC-"4411"]`}, t0.Add(time.Duration(i)*time.Second))
		if err := st.Tx(t.Context(), func(ctx context.Context, tx lapse.Tx) error { return tx.AppendAudit(ctx, ev) }); err != nil {
			t.Fatal(err)
		}
	}
}

// run starts w until the test ends (or stop is called) and returns stop.
func run(t *testing.T, w *sink.Worker) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newWorker(s sink.Sink, st sink.Store) *sink.Worker {
	w := sink.NewWorker(s, st)
	w.Interval = 20 * time.Millisecond
	w.MinBackoff, w.MaxBackoff = 5*time.Millisecond, 50*time.Millisecond
	w.CallTimeout = 2 * time.Second
	w.Batch = 7
	w.Logger = slog.New(slog.DiscardHandler)
	return w
}

// eventually waits up to 20 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// received records the sequence numbers a receiver got, in arrival order.
type received struct {
	mu   sync.Mutex
	seqs []int64
	msgs []string
	// countOnly keeps no messages, for benchmarks.
	countOnly bool
	count     int64
}

func (r *received) add(seq int64, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	if r.countOnly {
		return
	}
	r.seqs = append(r.seqs, seq)
	r.msgs = append(r.msgs, msg)
}

func (r *received) snapshot() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.seqs...)
}

// hasAll reports whether 1..n all arrived.
func (r *received) hasAll(n int64) bool {
	seen := map[int64]bool{}
	for _, s := range r.snapshot() {
		seen[s] = true
	}
	for i := int64(1); i <= n; i++ {
		if !seen[i] {
			return false
		}
	}
	return true
}

// checkAtLeastOnceInOrder checks that got holds 1..n in order with no gaps,
// where the only repeats are re-sent runs: a sequence may go back (a batch
// sent again) but never skip ahead.
func checkAtLeastOnceInOrder(t *testing.T, got []int64, n int64) {
	t.Helper()
	var high int64
	for i, s := range got {
		if s > high+1 {
			t.Fatalf("gap: record %d arrived after at most %d (position %d of %v)", s, high, i, got)
		}
		if i > 0 && s != got[i-1]+1 && s > got[i-1] {
			t.Fatalf("out of order at position %d: %d after %d", i, s, got[i-1])
		}
		high = max(high, s)
	}
	if high != n {
		t.Fatalf("received up to %d, want %d", high, n)
	}
}

// syslogServer is a syslog receiver speaking RFC 6587 octet counting.
type syslogServer struct {
	ln    net.Listener
	got   *received
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startSyslog(t testing.TB, addr string, cfg *tls.Config, got *received) *syslogServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	s := &syslogServer{ln: ln, got: got}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() { s.serve(t, c) })
		}
	})
	t.Cleanup(s.stop)
	return s
}

var seqRE = regexp.MustCompile(`\[lapse@32473 seq="(\d+)"`)

func (s *syslogServer) serve(t testing.TB, c net.Conn) {
	br := bufio.NewReader(c)
	for {
		lenStr, err := br.ReadString(' ')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimSuffix(lenStr, " "))
		if err != nil {
			t.Errorf("bad frame length %q", lenStr)
			return
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(br, msg); err != nil {
			return
		}
		if s.got.countOnly {
			s.got.add(0, "")
			continue
		}
		m := seqRE.FindSubmatch(msg)
		if m == nil {
			t.Errorf("message without seq: %s", msg)
			return
		}
		seq, _ := strconv.ParseInt(string(m[1]), 10, 64)
		s.got.add(seq, string(msg))
	}
}

func (s *syslogServer) stop() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func TestSyslogTCP(t *testing.T) {
	st := lapsetest.OpenStore(t)
	got := &received{}
	srv := startSyslog(t, "127.0.0.1:0", nil, got)
	s := &sink.Syslog{SinkName: "siem", Address: srv.ln.Addr().String(), Hostname: "lapse-1"}
	defer s.Close()
	w := newWorker(s, st)
	w.Interval = time.Hour // only Notify wakes it
	st.OnCommit = w.Notify
	appendEvents(t, st, 30)
	stop := run(t, w)
	eventually(t, "30 records", func() bool { return got.hasAll(30) })
	// Commits after start arrive too, woken by Notify.
	appendEvents(t, st, 5)
	eventually(t, "35 records", func() bool { return got.hasAll(35) })
	eventually(t, "cursor at 35", func() bool { c, _ := st.SinkCursor(t.Context(), "siem"); return c == 35 })
	stop()
	checkAtLeastOnceInOrder(t, got.snapshot(), 35)
	got.mu.Lock()
	msg := got.msgs[0]
	got.mu.Unlock()
	want := regexp.MustCompile(`^<110>1 2026-05-04T10:00:00\.000000Z lapse-1 lapse - request\.created \[lapse@32473 seq="1" type="request\.created" actor="alice" request="r0" user="alice" resource="orders-db" role="read"\] \{.*\}$`)
	if !want.MatchString(msg) {
		t.Errorf("first message %q does not match %s", msg, want)
	}
	var ev lapse.AuditEvent
	if err := json.Unmarshal([]byte(msg[strings.Index(msg, "] ")+2:]), &ev); err != nil || ev.Seq != 1 || ev.Hash == "" {
		t.Errorf("message body is not the event: %v %+v", err, ev)
	}
	if w.Backlog() != 0 {
		t.Errorf("backlog = %d, want 0", w.Backlog())
	}
}

func TestSyslogFormatEscapes(t *testing.T) {
	s := &sink.Syslog{Facility: 0, FacilitySet: true}
	ev := lapse.AuditEvent{Seq: 9, Time: t0, Type: lapse.EvAlertRaised, Actor: "lapse-monitor", User: `a"b]c\d`}
	b, err := s.Format(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `<4>1 2026-05-04T10:00:00.000000Z - lapse - alert.raised [lapse@32473 seq="9" type="alert.raised" actor="lapse-monitor" user="a\"b\]c\\d"] {`
	if !strings.HasPrefix(string(b), want) {
		t.Errorf("got  %s\nwant %s...", b, want)
	}
}

// testCA writes a self-signed CA and returns a server TLS config with a
// certificate it signed for "siem.test", and the CA's PEM file.
func testCA(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "siem.test"}, DNSNames: []string{"siem.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, caFile
}

func TestSyslogTLS(t *testing.T) {
	st := lapsetest.OpenStore(t)
	srvCfg, caFile := testCA(t)
	got := &received{}
	srv := startSyslog(t, "127.0.0.1:0", srvCfg, got)
	addr := srv.ln.Addr().String()

	// A client that does not trust the CA, or expects another name,
	// delivers nothing and the cursor stays.
	untrusted, err := sink.TLSConfig("", "siem.test")
	if err != nil {
		t.Fatal(err)
	}
	bad := &sink.Syslog{SinkName: "siem", Address: addr, TLS: untrusted}
	appendEvents(t, st, 3)
	if err := bad.Deliver(t.Context(), []lapse.AuditEvent{{Seq: 1, Time: t0, Type: "x"}}); err == nil {
		t.Fatal("delivered over TLS to a server whose CA is not trusted")
	}
	wrongName, _ := sink.TLSConfig(caFile, "other.test")
	if err := (&sink.Syslog{SinkName: "siem", Address: addr, TLS: wrongName}).Deliver(t.Context(), []lapse.AuditEvent{{Seq: 1, Time: t0, Type: "x"}}); err == nil {
		t.Fatal("delivered over TLS to a server with another name")
	}

	cfg, err := sink.TLSConfig(caFile, "siem.test")
	if err != nil {
		t.Fatal(err)
	}
	s := &sink.Syslog{SinkName: "siem", Address: addr, TLS: cfg}
	defer s.Close()
	w := newWorker(s, st)
	run(t, w)
	eventually(t, "3 records over TLS", func() bool { return got.hasAll(3) })
	checkAtLeastOnceInOrder(t, got.snapshot(), 3)
}

// TestSyslogReceiverRestart stops the receiver while records keep coming
// and starts it again on the same address: everything arrives, in order.
func TestSyslogReceiverRestart(t *testing.T) {
	st := lapsetest.OpenStore(t)
	got := &received{}
	srv := startSyslog(t, "127.0.0.1:0", nil, got)
	addr := srv.ln.Addr().String()
	s := &sink.Syslog{SinkName: "siem", Address: addr}
	defer s.Close()
	w := newWorker(s, st)
	st.OnCommit = w.Notify
	run(t, w)
	appendEvents(t, st, 10)
	eventually(t, "10 records", func() bool { return got.hasAll(10) })
	srv.stop()
	appendEvents(t, st, 20)
	time.Sleep(100 * time.Millisecond) // the worker fails a few times
	startSyslog(t, addr, nil, got)
	eventually(t, "30 records after the restart", func() bool { return got.hasAll(30) })
	checkAtLeastOnceInOrder(t, got.snapshot(), 30)
}

// collector is an HTTP collector that can be made to fail.
type collector struct {
	got      *received
	failing  atomic.Bool
	token    string
	requests atomic.Int64
	badAuth  atomic.Int64
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.requests.Add(1)
	if r.Header.Get("Authorization") != "Bearer "+c.token {
		c.badAuth.Add(1)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if c.failing.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	var evs []lapse.AuditEvent
	if r.Header.Get("Content-Type") == "application/x-ndjson" {
		dec := json.NewDecoder(r.Body)
		for {
			var ev lapse.AuditEvent
			if err := dec.Decode(&ev); err == io.EOF {
				break
			} else if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			evs = append(evs, ev)
		}
	} else if err := json.NewDecoder(r.Body).Decode(&evs); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(evs) == 0 || r.Header.Get("Lapse-First-Seq") != strconv.FormatInt(evs[0].Seq, 10) ||
		r.Header.Get("Lapse-Last-Seq") != strconv.FormatInt(evs[len(evs)-1].Seq, 10) {
		http.Error(w, "batch headers do not match", http.StatusBadRequest)
		return
	}
	for _, ev := range evs {
		c.got.add(ev.Seq, ev.Type)
	}
	w.WriteHeader(http.StatusNoContent)
}

// serveOn serves h on addr until the returned stop is called.
func serveOn(t *testing.T, addr string, h http.Handler) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { _ = srv.Serve(ln); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Close()
			<-done
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// TestHTTPCollectorOutage: the collector answers 503 for a while, then is
// gone altogether, then comes back. It ends up with every record, in
// order, and the cursor only moved on acknowledgement.
func TestHTTPCollectorOutage(t *testing.T) {
	for _, format := range []string{sink.FormatJSON, sink.FormatJSONLines} {
		t.Run(format, func(t *testing.T) {
			st := lapsetest.OpenStore(t)
			col := &collector{got: &received{}, token: "s3cret-token"}
			addr, stopServer := serveOn(t, "127.0.0.1:0", col)
			h := &sink.HTTP{SinkName: "collector", URL: "http://" + addr + "/ingest", Token: col.token, Format: format}
			defer h.Close()
			w := newWorker(h, st)
			logs := &lockedBuffer{}
			w.Logger = slog.New(slog.NewTextHandler(logs, nil))
			var errs atomic.Int64
			w.OnError = func(name string) {
				if name == "collector" {
					errs.Add(1)
				}
			}
			st.OnCommit = w.Notify
			run(t, w)
			appendEvents(t, st, 10)
			eventually(t, "10 records", func() bool { return col.got.hasAll(10) })

			col.failing.Store(true)
			appendEvents(t, st, 10)
			eventually(t, "failed deliveries", func() bool { return errs.Load() >= 3 })
			if cur, _ := st.SinkCursor(t.Context(), "collector"); cur != 10 {
				t.Errorf("cursor moved to %d while the collector failed; want 10", cur)
			}
			if b := w.Backlog(); b != 10 {
				t.Errorf("backlog while down = %d, want 10", b)
			}
			stopServer()
			appendEvents(t, st, 10)
			before := errs.Load()
			eventually(t, "failed connections", func() bool { return errs.Load() >= before+2 })
			col.failing.Store(false)
			serveOn(t, addr, col)
			eventually(t, "30 records after the outage", func() bool { return col.got.hasAll(30) })
			checkAtLeastOnceInOrder(t, col.got.snapshot(), 30)
			eventually(t, "cursor at 30", func() bool {
				cur, _ := st.SinkCursor(t.Context(), "collector")
				return cur == 30
			})
			if n := col.badAuth.Load(); n != 0 {
				t.Errorf("%d requests without the bearer token", n)
			}
			eventually(t, "sink up logged", func() bool { return strings.Contains(logs.String(), "msg=\"sink up\"") })
			out := logs.String()
			if strings.Count(out, "msg=\"sink down\"") != 1 || !strings.Contains(out, "503") || strings.Contains(out, col.token) {
				t.Errorf("logs: want one sink down with the status and no token:\n%s", out)
			}
		})
	}
}

// TestResumeAfterRestart stops Lapse (worker and store) and opens the
// store again: export resumes after the persisted cursor without sending
// acknowledged records again.
func TestResumeAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lapse.db")
	col := &collector{got: &received{}, token: "t"}
	addr, _ := serveOn(t, "127.0.0.1:0", col)
	open := func() *sqlstore.Store {
		st, err := sqlstore.OpenSQLite(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := open()
	h := &sink.HTTP{SinkName: "collector", URL: "http://" + addr, Token: "t"}
	w := newWorker(h, st)
	stop := run(t, w)
	appendEvents(t, st, 12)
	eventually(t, "12 records", func() bool { return col.got.hasAll(12) })
	eventually(t, "cursor at 12", func() bool { c, _ := st.SinkCursor(t.Context(), "collector"); return c == 12 })
	stop()
	h.Close()
	appendEvents(t, st, 8) // committed while no worker runs
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = open()
	defer st.Close()
	h2 := &sink.HTTP{SinkName: "collector", URL: "http://" + addr, Token: "t"}
	defer h2.Close()
	w2 := newWorker(h2, st)
	stop2 := run(t, w2)
	eventually(t, "20 records", func() bool { return col.got.hasAll(20) })
	stop2()
	got := col.got.snapshot()
	checkAtLeastOnceInOrder(t, got, 20)
	if len(got) != 20 {
		t.Errorf("received %d records, want exactly 20 (nothing sent twice after a clean restart): %v", len(got), got)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestHTTPBatchTooLarge: a collector that takes at most 3 records per
// request answers 413 to larger batches; the worker splits them and
// delivers everything in order.
func TestHTTPBatchTooLarge(t *testing.T) {
	st := lapsetest.OpenStore(t)
	col := &collector{got: &received{}, token: "t"}
	addr, _ := serveOn(t, "127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if first, _ := strconv.Atoi(r.Header.Get("Lapse-First-Seq")); first > 0 {
			if last, _ := strconv.Atoi(r.Header.Get("Lapse-Last-Seq")); last-first+1 > 3 {
				http.Error(w, "too large", http.StatusRequestEntityTooLarge)
				return
			}
		}
		col.ServeHTTP(w, r)
	}))
	h := &sink.HTTP{SinkName: "small", URL: "http://" + addr, Token: "t"}
	defer h.Close()
	w := newWorker(h, st) // batches of 7
	appendEvents(t, st, 20)
	run(t, w)
	eventually(t, "20 records", func() bool { return col.got.hasAll(20) })
	checkAtLeastOnceInOrder(t, col.got.snapshot(), 20)
}
