package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/client"
)

// globals are the flags every client command shares.
type globals struct {
	server, token, output string
	stdout, stderr        io.Writer
	// now is the clock for relative times in output; time.Now if nil.
	now func() time.Time
}

func (g *globals) client() (*client.Client, error) {
	server := g.serverURL()
	token := g.token
	if token == "" {
		token = os.Getenv("LAPSE_TOKEN")
	}
	if g.output != "text" && g.output != "json" {
		return nil, fmt.Errorf("--output must be text or json, got %q", g.output)
	}
	if token == "" {
		// The session of `lapse login`, refreshed when due.
		return g.sessionClient(server)
	}
	return client.New(server, token), nil
}

// serverURL is --server, LAPSE_SERVER or the default, without a trailing
// slash.
func (g *globals) serverURL() string {
	server := g.server
	if server == "" {
		server = os.Getenv("LAPSE_SERVER")
	}
	if server == "" {
		server = "http://127.0.0.1:8080"
	}
	return strings.TrimRight(server, "/")
}

func (g *globals) json() bool { return g.output == "json" }

func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (g *globals) clock() time.Time {
	if g.now != nil {
		return g.now()
	}
	return time.Now()
}

// when formats t relative to now, with the absolute time.
func (g *globals) when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	d := t.Sub(g.clock()).Round(time.Second)
	abs := t.UTC().Format("2006-01-02 15:04:05Z")
	switch {
	case d > 0:
		return fmt.Sprintf("in %s (%s)", d, abs)
	case d < 0:
		return fmt.Sprintf("%s ago (%s)", -d, abs)
	}
	return "now (" + abs + ")"
}

// printRequest prints one request for humans, or as JSON.
func (g *globals) printRequest(r api.Request) error {
	if g.json() {
		return g.printJSON(r)
	}
	w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	line := func(k, v string) {
		if v != "" && v != "-" {
			fmt.Fprintf(w, "%s:\t%s\n", k, v)
		}
	}
	line("id", r.ID)
	line("state", string(r.State))
	line("user", r.User)
	line("resource", r.Resource)
	line("role", r.Role)
	line("duration", r.Duration)
	line("reason", r.Reason)
	line("ticket", r.Ticket)
	line("requested", g.when(&r.CreatedAt))
	line("starts", g.when(r.StartAt))
	if r.State == lapse.StatePending {
		line("approvals", fmt.Sprintf("%d of %d", len(r.Approvals), r.ApprovalsNeeded))
		line("times out", g.when(r.PendingUntil))
	}
	for _, a := range r.Approvals {
		s := a.By
		if a.Comment != "" {
			s += ": " + a.Comment
		}
		line("approved by", s)
	}
	line("active since", g.when(r.ActivatedAt))
	line("expires", g.when(r.ExpiresAt))
	line("ended", g.when(r.EndedAt))
	line("end reason", string(r.EndReason))
	line("ended by", r.EndedBy)
	line("note", r.Note)
	if r.Extension != nil {
		line("extension", fmt.Sprintf("+%s waiting for %d of %d approvals (%s)", r.Extension.Duration, len(r.Extension.Approvals), r.Extension.ApprovalsNeeded, r.Extension.Reason))
	}
	if r.State == lapse.StateRevoking && r.LastError != "" {
		line("revocation", fmt.Sprintf("NOT CONFIRMED after %d attempt(s): %s", r.Attempts, r.LastError))
	} else if r.LastError != "" {
		line("last error", r.LastError)
	}
	if r.Decision != nil && !r.Decision.Allow {
		line("decision", strings.Join(r.Decision.Reasons, "; "))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if r.Credentials != nil {
		printCredentials(g.stdout, r.Credentials)
	} else if r.CredsWaiting {
		fmt.Fprintf(g.stdout, "\nCredentials are waiting: run 'lapse credentials %s' (shown once).\n", r.ID)
	}
	return nil
}

func printCredentials(w io.Writer, c *lapse.Credentials) {
	fmt.Fprintf(w, "\nCredentials (%s), shown once:\n%s\n", c.Kind, c.Value)
	if c.Instructions != "" {
		fmt.Fprintf(w, "%s\n", c.Instructions)
	}
}

func (g *globals) printList(rs []api.Request) error {
	if g.json() {
		if rs == nil {
			rs = []api.Request{}
		}
		return g.printJSON(rs)
	}
	if len(rs) == 0 {
		fmt.Fprintln(g.stdout, "no requests")
		return nil
	}
	w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tSTATE\tUSER\tRESOURCE\tROLE\tDURATION\tEXPIRES\tREASON")
	for _, r := range rs {
		exp := "-"
		switch r.State {
		case lapse.StateActive:
			exp = g.when(r.ExpiresAt)
		case lapse.StateRevoking:
			exp = "revoking"
			if r.LastError != "" {
				exp = "revoking, not confirmed: " + r.LastError
			}
		case lapse.StatePending:
			exp = fmt.Sprintf("needs %d more approval(s)", r.ApprovalsNeeded-len(r.Approvals))
		}
		reason := r.Reason
		if len(reason) > 40 {
			reason = reason[:37] + "..."
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, r.User, r.Resource, r.Role, r.Duration, exp, reason)
	}
	return w.Flush()
}

func newRequest(g *globals) *cobra.Command {
	var in api.SubmitRequest
	var wait bool
	var waitFor time.Duration
	var sshKey string
	cmd := &cobra.Command{
		Use:   "request RESOURCE --role ROLE --for DURATION --reason TEXT",
		Short: "Ask for a role on a resource for a bounded time",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			in.Resource = args[0]
			if sshKey != "" {
				b, err := os.ReadFile(sshKey)
				if err != nil {
					return fmt.Errorf("--ssh-key: %w", err)
				}
				if strings.Contains(string(b), "PRIVATE KEY") {
					return errors.New("--ssh-key takes the public key (the .pub file), never the private key")
				}
				in.Inputs = map[string]string{"ssh_public_key": strings.TrimSpace(string(b))}
			}
			r, err := c.Submit(cmd.Context(), in)
			if err != nil {
				return err
			}
			if wait {
				deadline := time.Now().Add(waitFor)
				for !r.State.Terminal() && r.State != lapse.StateActive && time.Now().Before(deadline) {
					if !g.json() {
						fmt.Fprintf(g.stderr, "waiting: %s is %s\n", r.ID, r.State)
					}
					select {
					case <-cmd.Context().Done():
						return cmd.Context().Err()
					case <-time.After(2 * time.Second):
					}
					if r, err = c.Get(cmd.Context(), r.ID); err != nil {
						return err
					}
				}
				if r.State == lapse.StateActive && r.CredsWaiting {
					creds, err := c.Credentials(cmd.Context(), r.ID)
					if err != nil {
						return err
					}
					r.Credentials, r.CredsWaiting = creds, false
				}
			}
			if err := g.printRequest(r); err != nil {
				return err
			}
			if wait && r.State != lapse.StateActive {
				return fmt.Errorf("request %s is %s", r.ID, r.State)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&in.Role, "role", "", "role to ask for (required)")
	f.StringVar(&in.Duration, "for", "", "how long, e.g. 30m, 1h, 2d (required)")
	f.StringVar(&in.Reason, "reason", "", "why you need it (required)")
	f.StringVar(&in.Ticket, "ticket", "", "ticket or incident id")
	f.StringVar(&in.StartAt, "at", "", "start the window later, at this RFC 3339 time")
	f.BoolVar(&wait, "wait", false, "wait until the request is active (or ends) and fetch the credentials")
	f.StringVar(&in.Device, "device", "", "the device you ask from, as your device management knows it")
	f.StringVar(&sshKey, "ssh-key", "", "SSH public key to certify, for ssh resources (e.g. ~/.ssh/id_ed25519.pub)")
	f.DurationVar(&waitFor, "wait-timeout", 24*time.Hour, "how long --wait waits")
	for _, n := range []string{"role", "for", "reason"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

func newLs(g *globals) *cobra.Command {
	var o client.ListOptions
	cmd := fetch(g, &cobra.Command{Use: "ls", Short: "List requests you may see", Args: cobra.NoArgs},
		func(ctx context.Context, c *client.Client, _ []string) ([]api.Request, error) {
			rs, err := c.List(ctx, o)
			if rs == nil {
				rs = []api.Request{}
			}
			return rs, err
		}, g.printList)
	cmd.Flags().StringVar(&o.State, "state", "", "pending, active, ended, all, or a state name (default: not ended)")
	cmd.Flags().BoolVar(&o.Mine, "mine", false, "only your own requests")
	cmd.Flags().BoolVar(&o.ToApprove, "to-approve", false, "only requests waiting for your approval")
	return cmd
}

// fetch makes cmd call the API once with call and print the result: as
// JSON with -o json, else with text.
func fetch[T any](g *globals, cmd *cobra.Command, call func(ctx context.Context, c *client.Client, args []string) (T, error), text func(T) error) *cobra.Command {
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		v, err := call(cmd.Context(), c, args)
		if err != nil {
			return err
		}
		if g.json() {
			return g.printJSON(v)
		}
		return text(v)
	}
	return cmd
}

// simple builds a command that takes one request id and prints the request.
func simple(g *globals, use, short string, setup func(cmd *cobra.Command) func(c *client.Client, cmd *cobra.Command, id string) (api.Request, error)) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1)}
	do := setup(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := g.client()
		if err != nil {
			return err
		}
		r, err := do(c, cmd, args[0])
		if err != nil {
			return err
		}
		if err := g.printRequest(r); err != nil {
			return err
		}
		if r.State == lapse.StateRevoking && (cmd.Name() == "release" || cmd.Name() == "revoke") {
			return fmt.Errorf("revocation of %s is not confirmed yet (%s); Lapse keeps retrying", r.ID, r.LastError)
		}
		return nil
	}
	return cmd
}

func newShow(g *globals) *cobra.Command {
	var timeline bool
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one request, with the activity seen under it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(r)
			}
			if err := g.printRequest(r); err != nil {
				return err
			}
			if timeline {
				// Everything that happened to the request, activity included.
				evs, err := c.AuditAll(cmd.Context(), client.AuditOptions{Request: r.ID})
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "\nTimeline:\n")
				w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				for _, e := range evs {
					state := string(e.To)
					if e.From != "" && e.From != e.To {
						state = string(e.From) + "→" + string(e.To)
					}
					fmt.Fprintf(w, "  %s\t%s\t%s\t%s\n", e.Time.UTC().Format("2006-01-02 15:04:05Z"), e.Type, e.Actor, state)
				}
				return w.Flush()
			}
			// Activity is in the audit log; those who may not read it see
			// the request alone.
			evs, err := c.AuditAll(cmd.Context(), client.AuditOptions{Request: r.ID, Type: lapse.EvActivity})
			if err != nil || len(evs) == 0 {
				return nil
			}
			fmt.Fprintf(g.stdout, "\nActivity:\n")
			w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
			for _, e := range evs {
				var a lapse.Activity
				if json.Unmarshal(e.Data, &a) != nil {
					continue
				}
				var details []string
				for _, k := range []string{"client_addr", "application_name", "database", "state", "query"} {
					if v := a.Details[k]; v != "" {
						details = append(details, k+"="+v)
					}
				}
				fmt.Fprintf(w, "  %s\t%s\t%s\n", a.At.UTC().Format("2006-01-02 15:04:05Z"), a.Kind, strings.Join(details, " "))
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&timeline, "timeline", false, "list everything that happened to the request, from the audit log")
	return cmd
}

func newApprove(g *globals) *cobra.Command {
	var comment string
	return simple(g, "approve ID", "Approve a request (or its extension)", func(cmd *cobra.Command) func(*client.Client, *cobra.Command, string) (api.Request, error) {
		cmd.Flags().StringVar(&comment, "comment", "", "comment recorded with the approval")
		return func(c *client.Client, cmd *cobra.Command, id string) (api.Request, error) {
			return c.Approve(cmd.Context(), id, comment)
		}
	})
}

func newDeny(g *globals) *cobra.Command {
	var reason string
	return simple(g, "deny ID --reason TEXT", "Deny a request (or its extension)", func(cmd *cobra.Command) func(*client.Client, *cobra.Command, string) (api.Request, error) {
		cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
		_ = cmd.MarkFlagRequired("reason")
		return func(c *client.Client, cmd *cobra.Command, id string) (api.Request, error) {
			return c.Deny(cmd.Context(), id, reason)
		}
	})
}

func newCancel(g *globals) *cobra.Command {
	return simple(g, "cancel ID", "Withdraw a request that is not active yet", func(*cobra.Command) func(*client.Client, *cobra.Command, string) (api.Request, error) {
		return func(c *client.Client, cmd *cobra.Command, id string) (api.Request, error) {
			return c.Cancel(cmd.Context(), id)
		}
	})
}

func newRelease(g *globals) *cobra.Command {
	return simple(g, "release ID", "End your access now", func(*cobra.Command) func(*client.Client, *cobra.Command, string) (api.Request, error) {
		return func(c *client.Client, cmd *cobra.Command, id string) (api.Request, error) {
			return c.Release(cmd.Context(), id)
		}
	})
}

func newRevoke(g *globals) *cobra.Command {
	var reason string
	return simple(g, "revoke ID --reason TEXT", "End someone's access now (admins)", func(cmd *cobra.Command) func(*client.Client, *cobra.Command, string) (api.Request, error) {
		cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
		_ = cmd.MarkFlagRequired("reason")
		return func(c *client.Client, cmd *cobra.Command, id string) (api.Request, error) {
			return c.Revoke(cmd.Context(), id, reason)
		}
	})
}

func newExtend(g *globals) *cobra.Command {
	var d, reason string
	return simple(g, "extend ID --for DURATION --reason TEXT", "Ask for more time on an active grant", func(cmd *cobra.Command) func(*client.Client, *cobra.Command, string) (api.Request, error) {
		cmd.Flags().StringVar(&d, "for", "", "how much more, e.g. 30m (required)")
		cmd.Flags().StringVar(&reason, "reason", "", "why (required)")
		_ = cmd.MarkFlagRequired("for")
		_ = cmd.MarkFlagRequired("reason")
		return func(c *client.Client, cmd *cobra.Command, id string) (api.Request, error) {
			return c.Extend(cmd.Context(), id, d, reason)
		}
	})
}

func newCredentials(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "credentials ID", Short: "Fetch the credentials waiting for you (once)", Args: cobra.ExactArgs(1)}
	return fetch(g, cmd, func(ctx context.Context, c *client.Client, args []string) (*lapse.Credentials, error) {
		return c.Credentials(ctx, args[0])
	}, func(creds *lapse.Credentials) error {
		printCredentials(g.stdout, creds)
		return nil
	})
}

func newSSHCert(g *globals) *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "ssh-cert ID --key ~/.ssh/id_ed25519",
		Short: "Write the SSH certificate of a grant next to your key, where ssh finds it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			r, err := c.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			cert := r.Outputs["ssh_certificate"]
			if r.CredsWaiting {
				// A later certificate (after an extension) waits to be
				// fetched once.
				creds, err := c.Credentials(cmd.Context(), r.ID)
				if err != nil {
					return err
				}
				if creds.Kind == "ssh_certificate" {
					cert = creds.Value
				}
			}
			if r.State != lapse.StateActive || cert == "" {
				return fmt.Errorf("request %s is %s and has no SSH certificate", r.ID, r.State)
			}
			path := strings.TrimSuffix(key, ".pub") + "-cert.pub"
			if err := os.WriteFile(path, []byte(strings.TrimSpace(cert)+"\n"), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "wrote %s (valid until %s); ssh uses it with %s\n", path, r.ExpiresAt.UTC().Format(time.RFC3339), strings.TrimSuffix(key, ".pub"))
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "your private key file; the certificate is written beside it as <key>-cert.pub (required)")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}

func newCheck(g *globals) *cobra.Command {
	var in api.CheckRequest
	cmd := &cobra.Command{
		Use:   "check --user U --resource R --role ROLE",
		Short: "Exit 0 if the access is active now, 1 if not",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			out, err := c.Check(cmd.Context(), in)
			if err != nil {
				return err
			}
			if g.json() {
				if err := g.printJSON(out); err != nil {
					return err
				}
			} else if out.Active {
				fmt.Fprintf(g.stdout, "active: %s has %s on %s until %s (request %s)\n", out.User, out.Role, out.Resource, out.ExpiresAt.UTC().Format(time.RFC3339), out.RequestID)
			} else {
				msg := fmt.Sprintf("not active: %s has no %s on %s now", out.User, out.Role, out.Resource)
				if out.Reason != "" {
					msg = "not active: " + out.Reason
				}
				fmt.Fprintln(g.stdout, msg)
			}
			if !out.Active {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&in.User, "user", "", "user")
	cmd.Flags().StringVar(&in.Resource, "resource", "", "resource")
	cmd.Flags().StringVar(&in.Role, "role", "", "role")
	cmd.Flags().StringVar(&in.Token, "access-token", "", "check a Lapse-issued access token instead")
	return cmd
}

func newWhoami(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "whoami", Short: "Show who the server thinks you are", Args: cobra.NoArgs}
	return fetch(g, cmd, func(ctx context.Context, c *client.Client, _ []string) (api.Whoami, error) {
		return c.Whoami(ctx)
	}, func(w api.Whoami) error {
		var tags []string
		for _, t := range []struct {
			on   bool
			name string
		}{{w.Admin, "admin"}, {w.Auditor, "auditor"}, {w.Service, "service account"}} {
			if t.on {
				tags = append(tags, t.name)
			}
		}
		admin := ""
		if len(tags) > 0 {
			admin = " (" + strings.Join(tags, ", ") + ")"
		}
		fmt.Fprintf(g.stdout, "%s%s, groups: %s\n", w.Name, admin, strings.Join(w.Groups, ", "))
		if w.Session != "" {
			mfa := "no second factor"
			if w.MFA && w.MFAAgeSeconds != nil {
				mfa = fmt.Sprintf("second factor %s ago", time.Duration(*w.MFAAgeSeconds)*time.Second)
			} else if w.MFA {
				mfa = "second factor"
			}
			fmt.Fprintf(g.stdout, "signed in (session %s, %s)\n", w.Session, mfa)
		}
		return nil
	})
}

func newResources(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "resources", Short: "List the resources and roles you can ask for", Args: cobra.NoArgs}
	return fetch(g, cmd, func(ctx context.Context, c *client.Client, _ []string) ([]api.Resource, error) {
		return c.Resources(ctx)
	}, func(rs []api.Resource) error {
		w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "RESOURCE\tROLE\tMAX\tAPPROVALS\tAPPROVERS\tREQUESTERS")
		for _, r := range rs {
			for _, ro := range r.Roles {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", r.Name, ro.Name, ro.MaxDuration, ro.Approvals, strings.Join(ro.Approvers, ","), strings.Join(ro.Requesters, ","))
			}
		}
		return w.Flush()
	})
}
