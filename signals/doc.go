// Package signals computes the network and risk facts of a request for
// policy: where it comes from ([Network]) and how risky it looks ([Risk]).
// The device facts come from the device registry, not from here.
//
// # Location
//
// [Network.ClientIP] finds the client's address: the connection's peer,
// unless the peer is one of the configured trusted proxies, in which case
// X-Forwarded-For is walked from the right, past trusted proxies, to the
// first address that is not one. A client that sends the header itself,
// straight to Lapse, is not a trusted proxy, so the header is ignored and it
// cannot choose its address.
//
// [Network.Lookup] turns the address into [lapse.NetworkSignals]: its
// country from a MaxMind-format database (country.iso_code; GeoLite2 and
// GeoIP2 Country or City databases have it), opened with [OpenGeoIP], and
// whether it is in one of the trusted networks.
//
// # Risk
//
// [Risk] adds up these contributions and caps the sum at 100. Each one
// that applies is listed in [lapse.RiskSignals].Reasons, e.g.
// "+20 new country FR".
//
//	+30  device unknown: no device named, or not in the registry;
//	     nothing else about the device is counted then
//	+25  device not managed, or management unknown
//	+10  disk not encrypted, or encryption unknown
//	+10  OS out of date, or unknown
//	+15  posture older than RiskInput.MaxPostureAge, or never reported
//	     (only when MaxPostureAge is set)
//	+20  new country: the request's country is known and is not among the
//	     user's known countries (only when the user has some)
//	+10  outside usual hours: the hour is not among the user's usual
//	     hours (only when the user has some)
//	+5   per recent denial, at most +20
//	+15  per open anomaly alert, at most +30; an alert of new_country,
//	     unusual_hour or denial_burst is not counted when the request
//	     already scores its fact (a new country, an unusual hour, recent
//	     denials), so that no fact weighs twice
package signals
