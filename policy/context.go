package policy

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/cedar-policy/cedar-go/types"

	"github.com/lapse-access/lapse"
)

// checkInput refuses signal values outside the schema's ranges. The shape
// of the context is fixed by [lapse.Signals], so it always matches the
// schema.
func checkInput(in lapse.DecisionInput) string {
	s := in.Signals
	switch {
	case in.Duration < 0:
		return fmt.Sprintf("invalid context: negative duration %s", in.Duration)
	case s.Risk.Known && (s.Risk.Score < 0 || s.Risk.Score > 100):
		return fmt.Sprintf("invalid context: risk score %d is outside 0..100", s.Risk.Score)
	case s.Network.Country != "" && !isCountry(s.Network.Country):
		return fmt.Sprintf("invalid context: country %q is not an ISO 3166-1 alpha-2 code", s.Network.Country)
	}
	return ""
}

func isCountry(c string) bool {
	return len(c) == 2 && c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z'
}

// buildContext returns the context of in, with only the attributes in
// keys. An unknown signal is left out.
func buildContext(in lapse.DecisionInput, tz *time.Location, keys uint8) types.Record {
	if keys == 0 {
		return types.Record{}
	}
	m := getMap()
	defer putMap(m)
	s := in.Signals
	if keys&ctxDuration != 0 {
		m["duration_seconds"] = types.Long(in.Duration / time.Second)
	}
	if keys&ctxReason != 0 {
		m["reason"] = types.String(in.Reason)
	}
	if keys&ctxTicket != 0 {
		m["ticket"] = types.String(in.Ticket)
	}
	if keys&ctxDevice != 0 {
		d := getMap()
		defer putMap(d)
		if s.Device.ID != "" {
			d["id"] = types.String(s.Device.ID)
		}
		flag(d, "known", s.Device.Known)
		flag(d, "managed", s.Device.Managed)
		flag(d, "disk_encrypted", s.Device.DiskEncrypted)
		flag(d, "os_up_to_date", s.Device.OSUpToDate)
		if !s.Device.PostureAt.IsZero() && !in.Now.IsZero() {
			d["posture_age_seconds"] = types.Long(max(0, in.Now.Sub(s.Device.PostureAt)/time.Second))
		}
		m["device"] = types.NewRecord(d)
	}
	if keys&ctxNetwork != 0 {
		n := getMap()
		defer putMap(n)
		if ip := s.Network.IP; ip.IsValid() {
			n["ip"] = types.IPAddr(netip.PrefixFrom(ip, ip.BitLen()))
		}
		if s.Network.Country != "" {
			n["country"] = countryValue(s.Network.Country)
		}
		flag(n, "trusted_network", s.Network.Trusted)
		m["network"] = types.NewRecord(n)
	}
	if keys&ctxTime != 0 {
		t := getMap()
		defer putMap(t)
		if !in.Now.IsZero() {
			now := in.Now.UTC()
			if tz != nil {
				now = in.Now.In(tz)
			}
			t["hour"] = types.Long(now.Hour())
			t["weekday"] = types.String(now.Weekday().String())
		}
		m["time"] = types.NewRecord(t)
	}
	if keys&ctxRisk != 0 {
		r := getMap()
		defer putMap(r)
		if s.Risk.Known {
			r["score"] = types.Long(s.Risk.Score)
			r["reasons"] = stringSet(s.Risk.Reasons)
		}
		m["risk"] = types.NewRecord(r)
	}
	if keys&ctxMFA != 0 {
		a := getMap()
		defer putMap(a)
		flag(a, "present", s.MFA.Present)
		if !s.MFA.At.IsZero() && !in.Now.IsZero() {
			a["age_seconds"] = types.Long(max(0, in.Now.Sub(s.MFA.At)/time.Second))
		}
		m["mfa"] = types.NewRecord(a)
	}
	return types.NewRecord(m)
}

// countries holds country codes boxed as Cedar values: there are few, and
// boxing one per decision would allocate.
var countries sync.Map // string -> types.Value

func countryValue(code string) types.Value {
	if v, ok := countries.Load(code); ok {
		return v.(types.Value)
	}
	v := types.Value(types.String(code))
	if len(code) == 2 {
		countries.Store(code, v)
	}
	return v
}

// scratch reuses the maps records are built from: types.NewRecord
// copies what it is given.
var scratch = sync.Pool{New: func() any { return make(types.RecordMap, 8) }}

func getMap() types.RecordMap { return scratch.Get().(types.RecordMap) }

func putMap(m types.RecordMap) {
	clear(m)
	scratch.Put(m)
}

func flag(m types.RecordMap, key types.String, f lapse.Flag) {
	if f.Known() {
		m[key] = types.Boolean(f == lapse.FlagTrue)
	}
}
