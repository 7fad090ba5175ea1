package postgres

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// passwordBytes is the entropy of an issued password.
const passwordBytes = 32

// newPassword returns a random password of [passwordBytes] bytes in
// URL-safe base64, so that it needs no escaping in a URL.
func newPassword() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(passwordBytes))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	// crypto/rand.Read never fails; it crashes the program instead.
	_, _ = rand.Read(b)
	return b
}

// scramVerifier returns the SCRAM-SHA-256 verifier of password with the
// given PBKDF2 iteration count, in the form PostgreSQL stores (RFC 5803):
//
//	SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
//
// Sent as the role's PASSWORD, it is stored as is: the server never sees
// the password, so it cannot end up in the server's logs.
func scramVerifier(password string, iterations int) (string, error) {
	salt := randomBytes(16)
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}
