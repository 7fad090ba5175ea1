package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-access/lapse/auditlog"
	"github.com/lapse-access/lapse/report"
)

// fileOutput returns the file named by -o for commands that write a file
// rather than print (evidence): "" for stdout when -o is text or json.
// Such a command checks the output format itself.
func (g *globals) fileOutput() string {
	out := g.output
	if out == "text" || out == "json" {
		return ""
	}
	g.output = "text"
	return out
}

func newEvidence(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "evidence ID [-o FILE]",
		Short: "Write the signed evidence bundle of a request",
		Long: `Write one signed file with everything about a request: the request, the
policy set in force, the decision and its policies, approvals, provisioning
and revocation receipts and activity, each record with its Merkle inclusion
proof against a signed checkpoint. An auditor checks it offline with
lapse evidence verify FILE --key PUBKEY. Without -o FILE it goes to stdout.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := g.fileOutput()
			c, err := g.client()
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := c.Evidence(cmd.Context(), args[0], &buf); err != nil {
				return err
			}
			if file == "" {
				_, err := g.stdout.Write(buf.Bytes())
				return err
			}
			if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
				return err
			}
			fmt.Fprintf(g.stderr, "evidence of request %s written to %s\n", args[0], file)
			return nil
		},
	}
	cmd.AddCommand(newEvidenceVerify(g))
	return cmd
}

func newEvidenceVerify(g *globals) *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "verify FILE --key PUBKEY",
		Short: "Verify an evidence bundle offline (exit 1 if it does not verify)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if g.output != "text" && g.output != "json" {
				return fmt.Errorf("--output must be text or json, got %q", g.output)
			}
			k, err := readKey(key)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			res, err := auditlog.VerifyEvidence(b, k)
			if g.json() {
				if perr := g.printJSON(map[string]any{"ok": err == nil, "error": errString(err), "evidence": res.Evidence, "records": res.Records}); perr != nil {
					return perr
				}
			} else if err == nil {
				e := res.Evidence
				fmt.Fprintf(g.stdout, "evidence OK: request %s, %d records proved against the checkpoint of size %d signed %s by %s\n",
					e.RequestID, len(res.Records), res.Checkpoint.Size, res.Checkpoint.Time.UTC().Format(time.RFC3339), res.Checkpoint.Origin)
				fmt.Fprintf(g.stdout, "  %s asked for %s/%s: %q; state %s\n", e.Request.User, e.Request.Resource, e.Request.Role, e.Request.Reason, e.Request.State)
				if e.PolicySet != nil {
					fmt.Fprintf(g.stdout, "  policy set in force: %s (record %d)\n", e.PolicySet.Hash, e.PolicySet.Record)
				}
				if len(e.Decision) > 0 {
					fmt.Fprintf(g.stdout, "  decision: %s\n", e.Decision)
				}
				for _, a := range e.Approvals {
					fmt.Fprintf(g.stdout, "  approved by %s at %s: %s\n", a.By, a.At.UTC().Format(time.RFC3339), a.Comment)
				}
				w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
				for _, r := range res.Records {
					fmt.Fprintf(w, "  %d\t%s\t%s\t%s\t%s\n", r.Seq, r.Time.UTC().Format("2006-01-02 15:04:05Z"), r.Type, r.Actor, r.Data)
				}
				if err := w.Flush(); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(g.stdout, "evidence FAILED: %v\n", err)
			}
			if err != nil {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the audit log's public key you pinned (or a file holding it)")
	return cmd
}

func newReport(g *globals) *cobra.Command {
	var since, until string
	cmd := &cobra.Command{
		Use:   "report --since DURATION|TIME [--until ...] [-o json|csv]",
		Short: "Access report: who had access to what, when, for how long, approved by whom and why",
		Long: `Report on a period (admins and auditors): per grant, who had access to what, when, for
how long, approved by whom and for what reason; grants never used (no
activity records); requests and extensions denied, by whom and why; and
totals per resource and per user. -o csv writes one row per grant and per
denial.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			format := g.output
			if format == "csv" {
				g.output = "text"
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			if since == "" {
				return fmt.Errorf("--since is required (e.g. 30d)")
			}
			s, err := g.parseTime("since", since)
			if err != nil {
				return err
			}
			u, err := g.parseTime("until", until)
			if err != nil {
				return err
			}
			rep, err := c.Report(cmd.Context(), s, u)
			if err != nil {
				return err
			}
			switch format {
			case "json":
				return g.printJSON(rep)
			case "csv":
				return writeReportCSV(g, rep)
			}
			return printReport(g, rep)
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "start of the period: this long ago (30d) or an RFC 3339 time")
	cmd.Flags().StringVar(&until, "until", "", "end of the period (default now)")
	return cmd
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

func printReport(g *globals, rep report.Report) error {
	w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "Access from %s to %s\n\nGRANTS (%d)\n", ts(rep.Since), ts(rep.Until), len(rep.Grants))
	fmt.Fprintln(w, "REQUEST\tUSER\tRESOURCE/ROLE\tFROM\tHELD\tENDED\tAPPROVED BY\tREASON\tACTIVITY")
	for _, gr := range rep.Grants {
		approved := strings.Join(gr.ApprovedBy, ",")
		if gr.Auto {
			approved = "policy"
		}
		ended := "still held"
		if gr.EndedAt != nil {
			ended = string(gr.EndReason)
		}
		act := strconv.Itoa(gr.Activity)
		if !gr.Used {
			act = "never used"
		}
		fmt.Fprintf(w, "%s\t%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\n", gr.RequestID, gr.User, gr.Resource, gr.Role, ts(gr.ActivatedAt), gr.Held, ended, approved, gr.Reason, act)
	}
	fmt.Fprintf(w, "\nNEVER USED (%d): %s\n", len(rep.Unused), strings.Join(rep.Unused, " "))
	fmt.Fprintf(w, "\nDENIED (%d)\n", len(rep.Denied))
	fmt.Fprintln(w, "TIME\tUSER\tRESOURCE/ROLE\tKIND\tBY\tWHY")
	for _, d := range rep.Denied {
		why := d.Reason
		if len(d.Policies) > 0 {
			why += " [" + strings.Join(d.Policies, ",") + "]"
		}
		fmt.Fprintf(w, "%s\t%s\t%s/%s\t%s\t%s\t%s\n", ts(d.Time), d.User, d.Resource, d.Role, d.Kind, d.By, why)
	}
	for _, part := range []struct {
		title, other string
		rows         []report.Summary
	}{{"BY RESOURCE", "USERS", rep.ByResource}, {"BY USER", "RESOURCES", rep.ByUser}} {
		fmt.Fprintf(w, "\n%s\nNAME\tGRANTS\tHELD\tNEVER USED\tDENIED\t%s\n", part.title, part.other)
		for _, s := range part.rows {
			held := (time.Duration(s.HeldSeconds) * time.Second).String()
			fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%d\t%s\n", s.Name, s.Grants, held, s.Unused, s.Denied, strings.Join(s.Others, ","))
		}
	}
	return w.Flush()
}

func writeReportCSV(g *globals, rep report.Report) error {
	w := csv.NewWriter(g.stdout)
	_ = w.Write([]string{"kind", "request", "user", "resource", "role", "time", "ended_at", "held_seconds", "end_reason", "by", "reason", "activity", "used", "policies"})
	for _, gr := range rep.Grants {
		ended := ""
		if gr.EndedAt != nil {
			ended = gr.EndedAt.Format(time.RFC3339)
		}
		by := strings.Join(gr.ApprovedBy, " ")
		if gr.Auto {
			by = "policy"
		}
		_ = w.Write([]string{"grant", gr.RequestID, gr.User, gr.Resource, gr.Role, gr.ActivatedAt.Format(time.RFC3339), ended,
			strconv.FormatFloat(gr.HeldSeconds, 'f', 0, 64), gr.EndReason, by, gr.Reason,
			strconv.Itoa(gr.Activity), strconv.FormatBool(gr.Used), ""})
	}
	for _, d := range rep.Denied {
		_ = w.Write([]string{d.Kind, d.RequestID, d.User, d.Resource, d.Role, d.Time.Format(time.RFC3339), "", "", "", d.By, d.Reason, "", "", strings.Join(d.Policies, " ")})
	}
	w.Flush()
	return w.Error()
}
