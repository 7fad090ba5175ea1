package webhook_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector/webhook"
)

func ExampleSign() {
	secret := []byte("0123456789abcdef0123456789abcdef")
	body := []byte(`{"event":"revoke","grant_id":"g-1"}`)
	fmt.Println(webhook.Sign(secret, body, time.Unix(1767323045, 0)))
	// Output: t=1767323045,v1=9d632f200b2a5b939f2a62a8057d9fb54fa1d434c843f65b68ec4391db9b86b5
}

func ExampleNew() {
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"credentials":{"kind":"text","value":"alice-tmp"}}`)
	}))
	defer receiver.Close()

	c, err := webhook.New(webhook.Config{
		Name:         "tickets",
		ProvisionURL: receiver.URL + "/provision",
		RevokeURL:    receiver.URL + "/revoke",
		Secret:       []byte("a secret of at least 32 bytes, from a file"),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := c.Provision(context.Background(), lapse.Grant{
		ID: "g-1", User: "alice", Resource: "billing", Role: "admin", ExpiresAt: time.Now().Add(time.Hour),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Ref, p.Credentials.Value)
	// Output: g-1 alice-tmp
}
