package monitor

import (
	"net/netip"
	"regexp"
	"strings"
)

// sshdLoginRE matches sshd's log line of a certificate login (LogLevel INFO
// or more): "Accepted publickey for deploy from 192.0.2.7 port 50122 ssh2:
// ED25519-CERT SHA256:... ID lapse:alice:k3x9... (serial 42) CA ...".
var sshdLoginRE = regexp.MustCompile(`Accepted publickey for (\S+) from (\S+) port (\d+) ssh2: \S+-CERT \S+ ID (\S+) \(serial (\d+)\)`)

// SSHDLogin turns an sshd log line of a login with a Lapse certificate
// (key ID "lapse:USER:REQUEST") into an activity report of kind "login"
// under that request. It reports false for every other line.
func SSHDLogin(line, host string) (ActivityReport, bool) {
	m := sshdLoginRE.FindStringSubmatch(line)
	if m == nil {
		return ActivityReport{}, false
	}
	login, ip, port, keyID, serial := m[1], m[2], m[3], m[4], m[5]
	parts := strings.Split(keyID, ":")
	if len(parts) != 3 || parts[0] != "lapse" || parts[1] == "" || parts[2] == "" {
		return ActivityReport{}, false
	}
	r := ActivityReport{
		User: parts[1], RequestID: parts[2], Kind: "login",
		ID:      "sshd " + ip + " port " + port + " serial " + serial,
		Details: map[string]string{"account": login, "serial": serial},
	}
	if a, err := netip.ParseAddr(ip); err == nil {
		r.SourceIP = a.String()
	}
	if host != "" {
		r.Details["host"] = host
	}
	return r, true
}
