package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/client"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Service accounts: machine identities with their own tokens (admins)"}
	var service string
	var groups []string
	create := &cobra.Command{
		Use:   "create --service NAME [--groups G1,G2]",
		Short: "Create a service account; its token is shown once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			a, err := c.CreateServiceAccount(cmd.Context(), service, groups)
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(a)
			}
			fmt.Fprintf(g.stdout, "Service account %s (groups: %s). Its token, shown this once:\n%s\n", a.Name, strings.Join(a.Groups, ", "), a.Token)
			return nil
		},
	}
	create.Flags().StringVar(&service, "service", "", "name of the service account (required)")
	create.Flags().StringSliceVar(&groups, "groups", nil, "groups of the service account, for policies")
	_ = create.MarkFlagRequired("service")

	ls := fetch(g, &cobra.Command{Use: "ls", Short: "List service accounts", Args: cobra.NoArgs},
		func(ctx context.Context, c *client.Client, _ []string) ([]api.ServiceAccount, error) {
			return c.ServiceAccounts(ctx)
		}, func(as []api.ServiceAccount) error {
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tGROUPS\tCREATED BY\tCREATED\tREVOKED")
			for _, a := range as {
				revoked := "-"
				if a.RevokedAt != nil {
					revoked = a.RevokedAt.Local().Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", a.Name, strings.Join(a.Groups, ","), a.CreatedBy, a.CreatedAt.Local().Format(time.RFC3339), revoked)
			}
			return w.Flush()
		})

	var reason string
	revoke := &cobra.Command{
		Use:   "revoke NAME [--reason TEXT]",
		Short: "Revoke a service account's token at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			a, err := c.RevokeServiceAccount(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(a)
			}
			fmt.Fprintf(g.stdout, "Revoked the token of %s.\n", a.Name)
			return nil
		},
	}
	revoke.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	cmd.AddCommand(create, ls, revoke)
	return cmd
}
