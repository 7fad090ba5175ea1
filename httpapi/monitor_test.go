package httpapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/client"
)

func (s *stack) postActivity(t *testing.T, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url+"/v1/activity", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestActivityBadInput(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	if _, err := s.as("alice").Submit(ctx, api.SubmitRequest{Resource: "app", Role: "read", Duration: "1h", Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, tc := range []struct {
		name, token, body string
		status            int
		msg               string
	}{
		{"no token", "", `{"user":"alice","resource":"app","role":"read","kind":"login"}`, 401, "missing bearer token"},
		{"user token", "tok-alice", `{"user":"alice","resource":"app","role":"read","kind":"login"}`, 401, "unknown token"},
		{"empty body", "tok-mdm", ``, 400, "body is empty"},
		{"not json", "tok-mdm", `login`, 400, "malformed JSON"},
		{"unknown field", "tok-mdm", `{"user":"alice","resource":"app","role":"read","kind":"login","grant":"x"}`, 400, "unknown field"},
		{"wrong type", "tok-mdm", `{"user":"alice","resource":"app","role":"read","kind":"login","details":{"n":1}}`, 400, "must be string"},
		{"two objects", "tok-mdm", `{"kind":"login"}{"kind":"login"}`, 400, "unexpected data"},
		{"no grant named", "tok-mdm", `{"user":"alice","kind":"login"}`, 400, "name the grant"},
		{"bad kind", "tok-mdm", `{"user":"alice","resource":"app","role":"read","kind":"DROP TABLE"}`, 400, "kind"},
		{"bad time", "tok-mdm", `{"user":"alice","resource":"app","role":"read","kind":"login","at":"now"}`, 400, "RFC 3339"},
		{"future", "tok-mdm", `{"user":"alice","resource":"app","role":"read","kind":"login","at":"` + future + `"}`, 400, "in the future"},
		{"bad ip", "tok-mdm", `{"user":"alice","resource":"app","role":"read","kind":"login","source_ip":"localhost"}`, 400, "not an IP"},
		{"unknown request", "tok-mdm", `{"request_id":"nope","kind":"login"}`, 400, "not found"},
		{"too large", "tok-mdm", `{"kind":"` + strings.Repeat("a", 2<<20) + `"}`, 413, "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nr, na := s.snapshot(t)
			code, body := s.postActivity(t, tc.token, tc.body)
			if code != tc.status || !strings.Contains(body, tc.msg) || !strings.Contains(body, `"error"`) {
				t.Fatalf("%d %s, want %d containing %q", code, body, tc.status, tc.msg)
			}
			if r, a := s.snapshot(t); r != nr || a != na {
				t.Errorf("bad input changed the store: %d→%d requests, %d→%d audit records", nr, r, na, a)
			}
		})
	}
	code, body := s.postActivity(t, "tok-mdm", `{"user":"alice","resource":"app","role":"read","kind":"login","source_ip":"::ffff:192.0.2.1"}`)
	if code != http.StatusCreated || !strings.Contains(body, `"outside_grant":false`) {
		t.Fatalf("good report: %d %s", code, body)
	}
}

func TestAlertsEndpoints(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	for i := range 3 {
		code, body := s.postActivity(t, "tok-mdm", `{"user":"dave","resource":"db","role":"admin","kind":"login","id":"s`+string(rune('0'+i))+`"}`)
		if code != http.StatusCreated {
			t.Fatalf("%d %s", code, body)
		}
	}
	page, err := s.as("carol").Alerts(ctx, client.AlertOptions{State: lapse.AlertOpen, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Alerts) != 2 || page.Next != page.Alerts[1].ID || page.Alerts[0].Rule != "activity_outside_grant" || page.Alerts[0].User != "dave" {
		t.Fatalf("first page: %+v", page)
	}
	all, err := s.as("carol").AlertsAll(ctx, client.AlertOptions{User: "dave"})
	if err != nil || len(all) != 3 {
		t.Fatalf("all alerts: %v %v", all, err)
	}
	if _, err := s.as("alice").Alerts(ctx, client.AlertOptions{}); !errors.Is(err, lapse.ErrForbidden) {
		t.Errorf("alice lists alerts: %v", err)
	}
	if _, err := s.as("alice").AckAlert(ctx, all[0].ID); !errors.Is(err, lapse.ErrForbidden) {
		t.Errorf("alice acknowledges: %v", err)
	}
	for _, q := range []string{"state=closed", "severity=urgent", "after=-1", "limit=x"} {
		err := s.as("carol").Do(ctx, http.MethodGet, "/v1/alerts?"+q, nil, nil)
		wantStatus(t, err, 400, "")
	}
	a, err := s.as("carol").AckAlert(ctx, all[0].ID)
	if err != nil || a.State != lapse.AlertAcknowledged || a.AckedBy != "carol" {
		t.Fatalf("ack: %+v %v", a, err)
	}
	_, err = s.as("carol").AckAlert(ctx, all[0].ID)
	wantStatus(t, err, 409, "already acknowledged")
	_, err = s.as("carol").AckAlert(ctx, 999)
	wantStatus(t, err, 404, "not found")
	err = s.as("carol").Do(ctx, http.MethodPost, "/v1/alerts/x/ack", nil, nil)
	wantStatus(t, err, 400, "positive whole number")
	evs, err := s.store.ListAudit(ctx, lapse.AuditFilter{Type: lapse.EvAlertAcknowledged})
	if err != nil || len(evs) != 1 || evs[0].Actor != "carol" {
		t.Fatalf("acknowledgement records: %+v %v", evs, err)
	}
	open, err := s.as("carol").AlertsAll(ctx, client.AlertOptions{State: lapse.AlertOpen})
	if err != nil || len(open) != 2 {
		t.Fatalf("open after ack: %v %v", open, err)
	}
}
