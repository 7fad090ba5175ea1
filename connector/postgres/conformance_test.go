package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/connector/postgres"
	"github.com/lapse-access/lapse/lapsetest/conntest"
	"github.com/lapse-access/lapse/lapsetest/pgtest"
)

func TestConformance(t *testing.T) {
	conntest.Run(t, func(t *testing.T) conntest.Harness {
		f := newFixture(t, pgtest.Shared(t))
		return conntest.Harness{
			Connector: f.conn,
			Grant: func(id, user string, expires time.Time) lapse.Grant {
				return lapse.Grant{
					ID: id, User: user, Resource: "orders-db", Role: "read", ExpiresAt: expires,
					Settings: postgres.RoleSettings{Grant: []string{readRole}},
				}
			},
			Usable: func(ctx context.Context, _ lapse.Grant, p lapse.Provisioned) error {
				conn, err := login(ctx, p)
				if err != nil {
					return err
				}
				defer conn.Close(context.Background())
				_, err = conn.Exec(ctx, "SELECT count(*) FROM orders")
				return err
			},
		}
	})
}
