package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzPostureReport posts arbitrary bodies to the posture endpoint: every
// one gets a JSON answer with a 2xx or 4xx status, never a 5xx or a crash.
// Seeds are in testdata/fuzz/FuzzPostureReport.
func FuzzPostureReport(f *testing.F) {
	s := newStack(f)
	f.Add("laptop-1", `{"owner":"alice","managed":true,"disk_encrypted":true,"os_up_to_date":true}`)
	f.Add("laptop-1", `{"managed":"yes"}`)
	f.Add("x", `{"managed":true,"disk_encrypted":false,"os_up_to_date":true,"reported_at":"yesterday"}`)
	f.Add("", `{}`)
	f.Fuzz(func(t *testing.T, id, body string) {
		fuzzPost(t, s.url+"/v1/devices/"+id+"/posture", body)
	})
}

// FuzzActivityReport posts arbitrary bodies to the activity endpoint:
// every one gets a 2xx or 4xx answer, never a 5xx or a crash. Seeds are in
// testdata/fuzz/FuzzActivityReport.
func FuzzActivityReport(f *testing.F) {
	s := newStack(f)
	f.Add(`{"user":"alice","resource":"app","role":"read","kind":"login","source_ip":"192.0.2.1"}`)
	f.Add(`{"request_id":"abc","kind":"query","at":"2026-01-02T15:04:05Z","details":{"q":"select 1"}}`)
	f.Add(`{"user":"alice","kind":"login","at":"-0001-01-01T00:00:00Z"}`)
	f.Add(`{"kind":""}`)
	f.Fuzz(func(t *testing.T, body string) {
		fuzzPost(t, s.url+"/v1/activity", body)
	})
}

// fuzzPost posts body to url with the integration's token and fails t on
// a 5xx answer; a URL or body the client cannot send is skipped.
func fuzzPost(t *testing.T, url, body string) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Skip()
	}
	req.Header.Set("Authorization", "Bearer tok-mdm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Skip()
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		t.Fatalf("POST %s body %q: status %d", url, body, resp.StatusCode)
	}
}
