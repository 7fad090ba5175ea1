package webhook_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lapse-access/lapse/connector/webhook"
)

func FuzzParseResponse(f *testing.F) {
	for _, seed := range []string{
		``,
		`{}`,
		`null`,
		`{"credentials":{"kind":"token","value":"v","instructions":"i"},"receipt":{"a":"b"}}`,
		`{"credentials":{"value":"v"}}`,
		`{"grant_ids":["g-1","g-2"]}`,
		`{"receipt":"x"}`,
		`{"credentials":`,
		`[1,2,3]`,
		`{"receipt":{"":"x"}}`,
		"{\"credentials\":{\"kind\":\"a\\u0000\",\"value\":\"v\"}}",
		`{} trailing`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := webhook.ParseResponse(body)
		if err != nil {
			if len(body) > 16 && strings.Contains(err.Error(), string(body)) {
				t.Errorf("error quotes the body: %v", err)
			}
			return
		}
		if c := r.Credentials; c != nil {
			if c.Kind == "" || (c.Value == "" && c.Instructions == "") || !utf8.ValidString(c.Value) {
				t.Errorf("accepted credentials %+v", c)
			}
		}
		for k := range r.Receipt {
			if k == "" || !utf8.ValidString(k) {
				t.Errorf("accepted receipt key %q", k)
			}
		}
		for _, id := range r.GrantIDs {
			if id == "" {
				t.Error("accepted an empty grant id")
			}
		}
	})
}
