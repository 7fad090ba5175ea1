package identity_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/broker"
)

// TestEveryEndpointEveryRole walks every endpoint of the API with every
// kind of caller and checks the status each gets.
func TestEveryEndpointEveryRole(t *testing.T) {
	s := newStack(t)
	// The service account's groups name the admin and auditor groups: a
	// machine gets no administrative rights from them.
	svc, err := s.client("tok-carol").CreateServiceAccount(t.Context(), "ci", []string{"eng", "security", "audit"})
	if err != nil {
		t.Fatal(err)
	}
	roles := []struct{ name, token string }{
		{"requester", "tok-alice"},
		{"approver", "tok-bob"},
		{"auditor", "tok-audrey"},
		{"admin", "tok-carol"},
		{"service", svc.Token},
		{"integration", "tok-mdm"},
		{"anonymous", ""},
	}
	alice := lapse.Principal{Name: "alice", Groups: []string{"eng"}, MFA: lapse.MFASignals{Present: lapse.FlagTrue, At: time.Now()}}
	n := 0
	// fixture makes what one call acts on: a pending request of alice's
	// that bob may approve, an active grant of alice's, a service account.
	type fixture struct{ pending, active, account string }
	fresh := func(t *testing.T) fixture {
		n++
		p, err := s.broker.Submit(t.Context(), alice, broker.SubmitInput{Resource: "prod-db", Role: "admin", Duration: time.Hour, Reason: "x"})
		if err != nil {
			t.Fatal(err)
		}
		a, err := s.broker.Submit(t.Context(), alice, broker.SubmitInput{Resource: "app", Role: "read", Duration: time.Hour, Reason: "x"})
		if err != nil || a.Request.State != lapse.StateActive {
			t.Fatalf("active fixture: %+v, %v", a.Request, err)
		}
		name := fmt.Sprintf("victim-%d", n)
		if _, err := s.client("tok-carol").CreateServiceAccount(t.Context(), name, nil); err != nil {
			t.Fatal(err)
		}
		return fixture{p.Request.ID, a.Request.ID, name}
	}
	const (
		ok, created, bad, unauth, forbidden, notFound, gone = 200, 201, 400, 401, 403, 404, 410
	)
	reason := `{"reason":"because"}`
	tests := []struct {
		method, path, body string
		// want holds the status per role, in the order of roles.
		want [7]int
	}{
		{"POST", "/v1/requests", `{"resource":"app","role":"read","duration":"1h","reason":"x"}`, [7]int{created, forbidden, forbidden, forbidden, created, unauth, unauth}},
		{"GET", "/v1/requests?state=all", "", [7]int{ok, ok, ok, ok, ok, unauth, unauth}},
		{"GET", "/v1/requests/{pending}", "", [7]int{ok, ok, ok, ok, forbidden, unauth, unauth}},
		{"POST", "/v1/requests/{pending}/approve", "", [7]int{forbidden, ok, forbidden, forbidden, forbidden, unauth, unauth}},
		{"POST", "/v1/requests/{pending}/deny", reason, [7]int{forbidden, ok, forbidden, ok, forbidden, unauth, unauth}},
		{"POST", "/v1/requests/{pending}/cancel", "", [7]int{ok, forbidden, forbidden, ok, forbidden, unauth, unauth}},
		{"POST", "/v1/requests/{active}/release", "", [7]int{ok, forbidden, forbidden, forbidden, forbidden, unauth, unauth}},
		{"POST", "/v1/requests/{active}/revoke", reason, [7]int{ok, forbidden, forbidden, ok, forbidden, unauth, unauth}},
		{"POST", "/v1/requests/{active}/extend", `{"duration":"30m","reason":"more"}`, [7]int{ok, forbidden, forbidden, forbidden, forbidden, unauth, unauth}},
		{"POST", "/v1/requests/{active}/credentials", "", [7]int{gone, forbidden, forbidden, forbidden, forbidden, unauth, unauth}},
		{"POST", "/v1/check", `{"user":"alice","resource":"app","role":"read"}`, [7]int{ok, forbidden, ok, ok, forbidden, unauth, unauth}},
		{"GET", "/v1/audit", "", [7]int{ok, ok, ok, ok, ok, unauth, unauth}},
		{"GET", "/v1/audit?user=alice", "", [7]int{ok, forbidden, ok, ok, forbidden, unauth, unauth}},
		{"GET", "/v1/audit/verify", "", [7]int{ok, ok, ok, ok, ok, unauth, unauth}},
		{"GET", "/v1/resources", "", [7]int{ok, ok, ok, ok, ok, unauth, unauth}},
		{"GET", "/v1/whoami", "", [7]int{ok, ok, ok, ok, ok, unauth, unauth}},
		{"GET", "/v1/ssh/ca.pub", "", [7]int{notFound, notFound, notFound, notFound, notFound, unauth, unauth}},
		{"GET", "/v1/ssh/krl", "", [7]int{notFound, notFound, notFound, notFound, notFound, unauth, unauth}},
		{"POST", "/v1/devices/laptop-1/posture", `{"owner":"alice","managed":true,"disk_encrypted":true,"os_up_to_date":true}`, [7]int{unauth, unauth, unauth, unauth, unauth, ok, unauth}},
		{"POST", "/v1/logout", "", [7]int{bad, bad, bad, bad, bad, unauth, unauth}},
		{"GET", "/v1/sessions", "", [7]int{ok, ok, ok, ok, ok, unauth, unauth}},
		{"GET", "/v1/sessions?user=alice", "", [7]int{ok, forbidden, ok, ok, forbidden, unauth, unauth}},
		{"POST", "/v1/sessions/s1/revoke", `{"user":"alice","reason":"lost laptop"}`, [7]int{notFound, forbidden, forbidden, notFound, forbidden, unauth, unauth}},
		{"POST", "/v1/tokens", `{"service":"new-{account}","groups":["eng"]}`, [7]int{forbidden, forbidden, forbidden, created, forbidden, unauth, unauth}},
		{"GET", "/v1/tokens", "", [7]int{forbidden, forbidden, ok, ok, forbidden, unauth, unauth}},
		{"POST", "/v1/tokens/{account}/revoke", reason, [7]int{forbidden, forbidden, forbidden, ok, forbidden, unauth, unauth}},
		{"GET", "/v1/no-such-endpoint", "", [7]int{notFound, notFound, notFound, notFound, notFound, unauth, unauth}},
	}
	for _, tc := range tests {
		for i, role := range roles {
			t.Run(tc.method+" "+tc.path+"/"+role.name, func(t *testing.T) {
				f := fresh(t)
				r := strings.NewReplacer("{pending}", f.pending, "{active}", f.active, "{account}", f.account)
				var body io.Reader
				if tc.body != "" {
					body = bytes.NewBufferString(r.Replace(tc.body))
				}
				req, _ := http.NewRequestWithContext(t.Context(), tc.method, s.url+r.Replace(tc.path), body)
				if role.token != "" {
					req.Header.Set("Authorization", "Bearer "+role.token)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var e struct {
					Error struct{ Message string } `json:"error"`
				}
				b, _ := io.ReadAll(resp.Body)
				_ = json.Unmarshal(b, &e)
				if resp.StatusCode != tc.want[i] {
					t.Errorf("%s %s as %s: %d (%s), want %d", tc.method, tc.path, role.name, resp.StatusCode, e.Error.Message, tc.want[i])
				}
			})
		}
	}
}
