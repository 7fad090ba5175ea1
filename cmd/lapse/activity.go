package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/monitor"
)

func newActivity(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "activity", Short: "Report activity to Lapse (with an integration's token)"}
	var host string
	sshd := &cobra.Command{
		Use:   "sshd [--host NAME] < LOG",
		Short: "Report the logins with Lapse certificates found in sshd's log (e.g. journalctl -fu ssh -o cat | lapse activity sshd)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			return reportSSHD(cmd, g, c.ReportActivity, os.Stdin, host)
		},
	}
	sshd.Flags().StringVar(&host, "host", "", "name of the server whose sshd logged (a detail of each login)")
	cmd.AddCommand(sshd)
	return cmd
}

// reportSSHD reports each Lapse certificate login in r, line by line as
// it comes. A report the server refuses is printed and skipped; the
// command then ends with an error.
func reportSSHD(cmd *cobra.Command, g *globals, report func(ctx context.Context, in any) (api.ActivityResult, error), r io.Reader, host string) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	failed := 0
	for sc.Scan() {
		in, ok := monitor.SSHDLogin(sc.Text(), host)
		if !ok {
			continue
		}
		res, err := report(cmd.Context(), in)
		if err != nil {
			failed++
			fmt.Fprintf(g.stderr, "login of %s under %s from %s: %v\n", in.User, in.RequestID, in.SourceIP, err)
			continue
		}
		if res.Outside {
			fmt.Fprintf(g.stdout, "login of %s from %s: OUTSIDE the window of %s (record %d)\n", in.User, in.SourceIP, in.RequestID, res.Seq)
		} else {
			fmt.Fprintf(g.stdout, "login of %s from %s under %s (record %d)\n", in.User, in.SourceIP, res.RequestID, res.Seq)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	if failed > 0 {
		return fmt.Errorf("%d logins not reported", failed)
	}
	return nil
}
