package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/client"
)

func newAlerts(g *globals) *cobra.Command {
	var o client.AlertOptions
	var open bool
	cmd := &cobra.Command{
		Use:   "alerts [--open] [--severity S] [--user U]",
		Short: "List anomaly alerts (admins and auditors)",
		Args:  cobra.NoArgs,
	}
	fetch(g, cmd, func(ctx context.Context, c *client.Client, _ []string) ([]lapse.Alert, error) {
		if open {
			o.State = lapse.AlertOpen
		}
		return c.AlertsAll(ctx, o)
	}, func(as []lapse.Alert) error {
		if len(as) == 0 {
			fmt.Fprintln(g.stdout, "no alerts")
			return nil
		}
		w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tRAISED\tSEVERITY\tRULE\tSTATE\tUSER\tREQUEST\tMESSAGE")
		for _, a := range as {
			state := a.State
			if a.State == lapse.AlertAcknowledged {
				state += " by " + a.AckedBy
			}
			if a.Revoke {
				state += ", revokes the grant"
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.RaisedAt.UTC().Format("2006-01-02 15:04:05Z"), a.Severity,
				a.Rule, state, dash(a.User), dash(a.RequestID), a.Message)
		}
		return w.Flush()
	})
	f := cmd.Flags()
	f.BoolVar(&open, "open", false, "only alerts not acknowledged yet")
	f.StringVar(&o.Severity, "severity", "", "only alerts of this severity: low, medium, high, critical")
	f.StringVar(&o.User, "user", "", "only alerts about this user")
	ack := &cobra.Command{Use: "ack ID", Short: "Acknowledge an alert (admins)", Args: cobra.ExactArgs(1)}
	fetch(g, ack, func(ctx context.Context, c *client.Client, args []string) (lapse.Alert, error) {
		id, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil || id <= 0 {
			return lapse.Alert{}, fmt.Errorf("alert id: want a positive whole number, got %q", args[0])
		}
		return c.AckAlert(ctx, id)
	}, func(a lapse.Alert) error {
		fmt.Fprintf(g.stdout, "alert %d (%s, %s) acknowledged by %s\n", a.ID, a.Rule, a.Severity, a.AckedBy)
		return nil
	})
	cmd.AddCommand(ack)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
