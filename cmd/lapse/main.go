// Command lapse is the just-in-time access broker: `lapse serve` runs the
// server, and every other subcommand is a client of its HTTP API.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries an exit code without a message of its own.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintln(stderr, "lapse:", err)
	return 1
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "lapse",
		Short:         "Just-in-time access: ask for a role, get it for a bounded time, lose it on time",
		Version:       Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	g := &globals{stdout: stdout, stderr: stderr}
	root.PersistentFlags().StringVar(&g.server, "server", "", "Lapse server URL (env LAPSE_SERVER; default http://127.0.0.1:8080)")
	root.PersistentFlags().StringVar(&g.token, "token", "", "bearer token (env LAPSE_TOKEN)")
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	root.AddCommand(
		newServe(g),
		newRequest(g), newLs(g), newShow(g), newApprove(g), newDeny(g), newCancel(g), newRelease(g),
		newRevoke(g), newExtend(g), newCredentials(g), newSSHCert(g), newCheck(g), newAudit(g), newWhoami(g), newResources(g),
		newConfig(g), newPolicy(g), newEvidence(g), newReport(g), newAlerts(g), newActivity(g),
		newLogin(g), newLogout(g), newTokenCmd(g),
	)
	return root
}
