package sink

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lapse-access/lapse"
)

// Syslog severities used for audit events (RFC 5424, section 6.2.1).
const (
	sevWarning = 4
	sevInfo    = 6
)

// DefaultFacility is "log audit" (13).
const DefaultFacility = 13

// sdID is the structured data id of Lapse's parameters; 32473 is the
// private enterprise number reserved for documentation (RFC 5612).
const sdID = "lapse@32473"

// Syslog sends audit events to a syslog receiver as RFC 5424 messages
// over TCP, framed by octet counting (RFC 6587), optionally over TLS.
// Each message carries the event type as MSGID, its sequence number,
// request, user, resource and role as structured data, and the whole
// event as JSON in MSG. Alert events have severity warning, the others
// informational.
type Syslog struct {
	// SinkName names the sink.
	SinkName string
	// Address is the receiver's host:port.
	Address string
	// TLS, if set, wraps the connection in TLS with these settings.
	TLS *tls.Config
	// Facility is the syslog facility, 0–23; zero means [DefaultFacility]
	// unless FacilitySet.
	Facility    int
	FacilitySet bool
	// Hostname is the HOSTNAME field; "-" when empty.
	Hostname string
	// DialTimeout bounds connecting; default 10 s.
	DialTimeout time.Duration

	mu   sync.Mutex
	conn net.Conn
	w    *bufio.Writer
}

var _ Sink = (*Syslog)(nil)

// Name names the sink.
func (s *Syslog) Name() string { return s.SinkName }

// Deliver writes evs and flushes them. A write error drops the connection;
// the next call dials again.
func (s *Syslog) Deliver(ctx context.Context, evs []lapse.AuditEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil && peerClosed(s.conn) {
		s.drop()
	}
	if s.conn == nil {
		if err := s.dial(ctx); err != nil {
			return err
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = s.conn.SetWriteDeadline(dl)
	} else {
		_ = s.conn.SetWriteDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { _ = s.conn.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	for _, ev := range evs {
		msg, err := s.Format(ev)
		if err != nil {
			return err
		}
		if _, err := s.w.WriteString(strconv.Itoa(len(msg)) + " "); err != nil {
			s.drop()
			return fmt.Errorf("syslog %s: write: %w", s.Address, err)
		}
		if _, err := s.w.Write(msg); err != nil {
			s.drop()
			return fmt.Errorf("syslog %s: write: %w", s.Address, err)
		}
	}
	if err := s.w.Flush(); err != nil {
		s.drop()
		return fmt.Errorf("syslog %s: write: %w", s.Address, err)
	}
	return nil
}

func (s *Syslog) dial(ctx context.Context) error {
	timeout := s.DialTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	var (
		c   net.Conn
		err error
	)
	if s.TLS != nil {
		c, err = (&tls.Dialer{NetDialer: d, Config: s.TLS}).DialContext(ctx, "tcp", s.Address)
	} else {
		c, err = d.DialContext(ctx, "tcp", s.Address)
	}
	if err != nil {
		return fmt.Errorf("syslog %s: connect: %w", s.Address, err)
	}
	s.conn, s.w = c, bufio.NewWriterSize(c, 64<<10)
	return nil
}

func (s *Syslog) drop() {
	if s.conn != nil {
		_ = s.conn.Close()
	}
	s.conn, s.w = nil, nil
}

// peerClosed reports whether the receiver closed c (or reset it). Syslog
// receivers send nothing, so a read that ends in anything but a timeout
// (EOF, a reset) means the connection is over: writing to it would be
// lost.
func peerClosed(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := c.Read(b[:])
	_ = c.SetReadDeadline(time.Time{})
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		return false
	}
	return true
}

// Close closes the connection.
func (s *Syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop()
	return nil
}

// Format returns the RFC 5424 message of ev (without framing).
func (s *Syslog) Format(ev lapse.AuditEvent) ([]byte, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode audit event %d: %w", ev.Seq, err)
	}
	fac := s.Facility
	if fac == 0 && !s.FacilitySet {
		fac = DefaultFacility
	}
	sev := sevInfo
	if ev.Type == lapse.EvAlertRaised {
		sev = sevWarning
	}
	var b strings.Builder
	b.Grow(len(body) + 256)
	b.WriteString("<" + strconv.Itoa(fac*8+sev) + ">1 ")
	b.WriteString(ev.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
	b.WriteByte(' ')
	b.WriteString(header(s.Hostname, 255))
	b.WriteString(" lapse - ")
	b.WriteString(header(ev.Type, 32))
	b.WriteString(" [" + sdID + ` seq="` + strconv.FormatInt(ev.Seq, 10) + `"`)
	for _, p := range [][2]string{{"type", ev.Type}, {"actor", ev.Actor}, {"request", ev.RequestID}, {"user", ev.User}, {"resource", ev.Resource}, {"role", ev.Role}} {
		if p[1] != "" {
			b.WriteString(" " + p[0] + `="` + sdEscape(p[1]) + `"`)
		}
	}
	b.WriteString("] ")
	b.Write(body)
	return []byte(b.String()), nil
}

// header returns v as a header field: printable US-ASCII without spaces,
// at most n bytes, "-" when empty.
func header(v string, n int) string {
	var b strings.Builder
	for i := 0; i < len(v) && b.Len() < n; i++ {
		if c := v[i]; c > 32 && c < 127 {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// sdEscaper escapes structured data parameter values (RFC 5424, 6.3.3).
var sdEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, `]`, `\]`)

func sdEscape(v string) string { return sdEscaper.Replace(v) }
