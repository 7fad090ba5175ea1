package oidctest

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"

	jose "github.com/go-jose/go-jose/v4"
)

// rewriteIDToken passes token requests to next and, when Tamper.Claims is
// set, edits the ID token of the answer and signs it again.
func (p *Provider) rewriteIDToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		edit, key := p.tamper.Claims, p.key
		if p.tamper.OtherKey {
			key = p.other
		}
		p.mu.Unlock()
		if edit == nil {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		var resp map[string]any
		if rec.Code == http.StatusOK && json.Unmarshal(body, &resp) == nil {
			if raw, ok := resp["id_token"].(string); ok {
				if signed, err := resign(raw, key, edit); err == nil {
					resp["id_token"] = signed
					body, _ = json.Marshal(resp)
				}
			}
		}
		maps.Copy(w.Header(), rec.Header())
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
}

func resign(raw string, key signingKey, edit func(map[string]any)) (string, error) {
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return "", err
	}
	var claims map[string]any
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil {
		return "", err
	}
	edit(claims)
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key.key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", key.id))
	if err != nil {
		return "", err
	}
	out, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return out.CompactSerialize()
}
