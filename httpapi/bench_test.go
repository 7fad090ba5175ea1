package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/lapse-access/lapse/api"
)

// benchClients is the number of concurrent clients of the check benchmarks.
const benchClients = 32

// benchPost runs method path with body from benchClients goroutines over
// loopback HTTP with keep-alive, and reports requests per second.
func benchPost(b *testing.B, method, url, path, token string, body []byte) {
	tr := &http.Transport{MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	b.SetParallelism((benchClients + 1) / 2) // × GOMAXPROCS(2) goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(method, url+path, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := hc.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkCheck measures POST /v1/check by user, resource and role over
// loopback HTTP with 32 concurrent clients, against a store that holds the
// grant. BenchmarkCheck/baseline is the same traffic to /v1/whoami, which
// authenticates but reads nothing, so the two compare within one run.
func BenchmarkCheck(b *testing.B) {
	s := newStack(b)
	ctx := context.Background()
	if _, err := s.as("alice").Submit(ctx, api.SubmitRequest{Resource: "app", Role: "read", Duration: "4h", Reason: "bench"}); err != nil {
		b.Fatal(err)
	}
	b.Run("baseline", func(b *testing.B) {
		benchPost(b, http.MethodGet, s.url, "/v1/whoami", "tok-carol", nil)
	})
	b.Run("user", func(b *testing.B) {
		benchPost(b, http.MethodPost, s.url, "/v1/check", "tok-carol", []byte(`{"user":"alice","resource":"app","role":"read"}`))
	})
}
