package webui_test

import (
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/httpapi"
	"github.com/lapse-access/lapse/webui"
)

// BenchmarkPages measures a signed-in page, from cookie to rendered HTML,
// against the API's JSON listing of the same requests as the baseline:
// what the templates, the session check and the headers add.
//
//	go test -run '^$' -bench Pages -count 6 ./webui
func BenchmarkPages(b *testing.B) {
	s := newStack(b)
	for range 50 {
		s.submit(b, "alice", "app", "read")
	}
	principals := map[[32]byte]lapse.Principal{sha256.Sum256([]byte("tok-alice")): {Name: "alice", Groups: users["alice"]}}
	api := (&httpapi.Server{Broker: s.broker, Auth: httpapi.NewStaticTokens(principals)}).Handler()
	id := s.submit(b, "alice", "db", "admin").ID
	for _, bc := range []struct {
		name string
		h    http.Handler
		path string
		api  bool
	}{
		{"api-list-50", api, "/v1/requests?mine=true&state=all", true},
		{"ui-my-requests-50", s.handler, "/?state=all", false},
		{"ui-request-detail", s.handler, "/requests/" + id, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, bc.path, nil)
			if bc.api {
				req.Header.Set("Authorization", "Bearer tok-alice")
			} else {
				req.AddCookie(&http.Cookie{Name: webui.CookieName, Value: "tok-alice"})
			}
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				bc.h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
