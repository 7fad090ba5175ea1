package lapse

import (
	"net/netip"
	"time"
)

// Signals are the facts about a request's circumstances that policies may
// look at: the device it comes from, the network, the risk score and the
// caller's MFA. The zero value of every field means unknown; policy treats
// an unknown fact as absent, so a policy that relies on it does not allow.
type Signals struct {
	Device  DeviceSignals
	Network NetworkSignals
	Risk    RiskSignals
	MFA     MFASignals
}

// Flag is a yes/no fact that may be unknown. Its zero value is [FlagUnknown].
type Flag int8

// The values of a [Flag].
const (
	FlagUnknown Flag = iota
	FlagFalse
	FlagTrue
)

// FlagOf returns the known Flag for b.
func FlagOf(b bool) Flag {
	if b {
		return FlagTrue
	}
	return FlagFalse
}

// Known reports whether f is known.
func (f Flag) Known() bool { return f == FlagFalse || f == FlagTrue }

// DeviceSignals describe the device a request comes from.
type DeviceSignals struct {
	// ID names the device; empty when the request names none.
	ID string
	// Known says whether the device is in the device registry.
	Known         Flag
	Managed       Flag
	DiskEncrypted Flag
	OSUpToDate    Flag
	// PostureAt is when the posture was last reported; zero when never.
	PostureAt time.Time
}

// NetworkSignals describe where a request comes from.
type NetworkSignals struct {
	IP netip.Addr
	// Country is the ISO 3166-1 alpha-2 code of IP, e.g. "DE".
	Country string
	// Trusted says whether IP is in a configured trusted network.
	Trusted Flag
}

// RiskSignals are the computed risk of a request.
type RiskSignals struct {
	// Known says whether a score was computed.
	Known bool
	// Score runs from 0 (no risk) to 100.
	Score int
	// Reasons list the contributions to Score.
	Reasons []string
}

// MFASignals describe the caller's multi-factor authentication.
type MFASignals struct {
	Present Flag
	// At is when the second factor was last presented; zero when unknown.
	At time.Time
}

// Device is what the device registry knows of one device, as last reported
// by a device management integration.
type Device struct {
	ID string `json:"id"`
	// Owner is the user the device belongs to; empty when not reported. A
	// request from a device owned by someone else treats it as unknown.
	Owner         string    `json:"owner,omitempty"`
	Managed       bool      `json:"managed"`
	DiskEncrypted bool      `json:"disk_encrypted"`
	OSUpToDate    bool      `json:"os_up_to_date"`
	ReportedAt    time.Time `json:"reported_at"`
	// Source names the integration that reported it.
	Source string `json:"source"`
}

// DeviceSignals returns the signals of device d for a request by user at
// now. A device that is not d (d.ID empty), belongs to someone else, or
// whose posture is older than maxAge is known at most by name: its posture
// is unknown.
func (d Device) Signals(id, user string, now time.Time, maxAge time.Duration) DeviceSignals {
	s := DeviceSignals{ID: id}
	if id == "" {
		return s
	}
	if d.ID != id || (d.Owner != "" && d.Owner != user) {
		s.Known = FlagFalse
		return s
	}
	s.Known = FlagTrue
	s.PostureAt = d.ReportedAt
	if maxAge > 0 && now.Sub(d.ReportedAt) > maxAge {
		return s
	}
	s.Managed, s.DiskEncrypted, s.OSUpToDate = FlagOf(d.Managed), FlagOf(d.DiskEncrypted), FlagOf(d.OSUpToDate)
	return s
}
