package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/api"
	"github.com/lapse-access/lapse/auditlog"
	"github.com/lapse-access/lapse/client"
	"github.com/lapse-access/lapse/config"
)

// openAuditKey loads the key that signs the audit log's checkpoints from
// keys (the data dir, or a database that replicas share), creating it for
// origin lapse/<instance> (the host name when instance is empty) on first
// start.
func openAuditKey(ctx context.Context, keys lapse.KeyStore, instance string) (*auditlog.FileKey, error) {
	if instance != "" {
		origin := "lapse/" + instance
		return auditlog.LoadOrCreateKeyIn(ctx, keys, "audit.key", origin, origin)
	}
	// A key made before keeps its origin; a new one is named after this
	// host.
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "local"
	}
	origin := "lapse/" + regexp.MustCompile(`[^A-Za-z0-9._-]+`).ReplaceAllString(host, "-")
	return auditlog.LoadOrCreateKeyIn(ctx, keys, "audit.key", "", origin)
}

// parseSince turns a duration before now (30m, 2d) or an RFC 3339 time
// into an RFC 3339 time.
func (g *globals) parseTime(flag, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	if d, err := config.ParseDuration(v); err == nil {
		return g.clock().Add(-d).UTC().Format(time.RFC3339Nano), nil
	}
	if _, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return v, nil
	}
	return "", fmt.Errorf("--%s: want a duration before now (30m, 2d) or an RFC 3339 time, got %q", flag, v)
}

// readKey returns a verifier key given as text or as a file holding it.
func readKey(v string) (string, error) {
	if v == "" {
		return "", errors.New("--key is required: the audit log's public key (lapse audit key prints it), or a file holding it")
	}
	if !strings.Contains(v, "+") {
		b, err := os.ReadFile(v)
		if err != nil {
			return "", fmt.Errorf("--key: %w", err)
		}
		v = string(b)
	}
	v = strings.TrimSpace(v)
	if _, err := auditlog.ParseVerifierKey(v); err != nil {
		return "", err
	}
	return v, nil
}

func newAudit(g *globals) *cobra.Command {
	var (
		o            client.AuditOptions
		since, until string
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read the audit log",
		Long: `Read the audit log, newest last. Admins and auditors see every record;
others the records about themselves.

Without --limit every matching record is listed; with --limit one page is,
and the command to read the next is printed on stderr (with -o json, the
page object with its cursor "next").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if o.Since, err = g.parseTime("since", since); err != nil {
				return err
			}
			if o.Until, err = g.parseTime("until", until); err != nil {
				return err
			}
			var evs []lapse.AuditEvent
			var next int64
			if o.Limit > 0 {
				page, err := c.Audit(cmd.Context(), o)
				if err != nil {
					return err
				}
				if g.json() {
					// The page as the API returns it, with its cursor.
					return g.printJSON(page)
				}
				evs, next = page.Events, page.Next
			} else if evs, err = c.AuditAll(cmd.Context(), o); err != nil {
				return err
			}
			if err := g.printAudit(evs); err != nil {
				return err
			}
			if next > 0 {
				fmt.Fprintf(g.stderr, "more records: repeat with --after %d\n", next)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "only records since this long ago (1h, 7d) or this RFC 3339 time")
	f.StringVar(&until, "until", "", "only records before this long ago (1h, 7d) or this RFC 3339 time")
	f.StringVar(&o.User, "user", "", "only records about this user")
	f.StringVar(&o.Resource, "resource", "", "only records about this resource")
	f.StringVar(&o.Request, "request", "", "only records about this request")
	f.StringVar(&o.Type, "type", "", "only records of this type (e.g. request.denied)")
	f.IntVar(&o.Limit, "limit", 0, "show one page of at most this many records")
	f.Int64Var(&o.After, "after", 0, "start after this record (the cursor of the previous page)")
	cmd.AddCommand(newAuditVerify(g), newAuditExport(g), newAuditCheckpoint(g), newAuditKey(g), newAuditProof(g))
	return cmd
}

func (g *globals) printAudit(evs []lapse.AuditEvent) error {
	if g.json() {
		// One record a line, its data as stored: byte-exact, so that its
		// hash can be recomputed from this output.
		b := []byte("[")
		for i, ev := range evs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, "\n  "...)
			var err error
			if b, err = auditlog.AppendRecord(b, ev); err != nil {
				return err
			}
		}
		if len(evs) > 0 {
			b = append(b, '\n')
		}
		b = append(b, "]\n"...)
		_, err := g.stdout.Write(b)
		return err
	}
	w := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SEQ\tTIME\tEVENT\tACTOR\tREQUEST\tUSER\tRESOURCE/ROLE\tSTATE\tDETAILS")
	for _, e := range evs {
		state := string(e.To)
		if e.From != "" && e.From != e.To {
			state = string(e.From) + "→" + string(e.To)
		}
		res := e.Resource
		if e.Role != "" {
			res += "/" + e.Role
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.UTC().Format("2006-01-02 15:04:05Z"), e.Type, e.Actor, e.RequestID, e.User, res, state, string(e.Data))
	}
	return w.Flush()
}

func newAuditVerify(g *globals) *cobra.Command {
	var file, key string
	cmd := &cobra.Command{
		Use:   "verify [--file FILE --key PUBKEY]",
		Short: "Verify that the audit log is untampered (exit 1 if not)",
		Long: `Verify the audit log: every record against its hash and the one before it,
the Merkle tree they build against every signed checkpoint, and the last
checkpoint against records deleted from the end. Exit 1, naming the first
bad record, if anything was edited, deleted, inserted or reordered.

Without flags the server verifies its log. With --key the log is exported
from the server and verified here against the key you pinned. With --file
an export (lapse audit export) is verified offline, without a server.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" && key == "" {
				return g.verifyOnServer(cmd)
			}
			k, err := readKey(key)
			if err != nil {
				return err
			}
			var (
				res auditlog.Result
				h   auditlog.ExportHeader
			)
			if file != "" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				res, h, err = auditlog.VerifyExport(f, k)
				return g.printVerify(res, h.Origin, err)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() {
				res, h, err := auditlog.VerifyExport(pr, k)
				_, _ = io.Copy(io.Discard, pr) // let the download finish
				done <- g.printVerify(res, h.Origin, err)
			}()
			err = c.Export(cmd.Context(), "", pw)
			pw.CloseWithError(err)
			verr := <-done
			if err != nil {
				return err
			}
			return verr
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "verify this export file offline")
	cmd.Flags().StringVar(&key, "key", "", "the audit log's public key (or a file holding it), as lapse audit key prints it")
	return cmd
}

// printVerify prints the outcome of a local verification; a broken log is
// exit 1.
func (g *globals) printVerify(res auditlog.Result, origin string, err error) error {
	var ce *lapse.ChainError
	var cpe *auditlog.CheckpointError
	if err != nil && !errors.As(err, &ce) && !errors.As(err, &cpe) {
		return err
	}
	out := api.Verify{OK: err == nil, Records: res.Records, Head: res.Head, Root: res.Root, Checkpoints: res.Checkpoints, Signed: res.Signed}
	if ce != nil {
		out.Error, out.BadRecord = ce.Error(), ce.Seq
	} else if cpe != nil {
		out.Error, out.BadCheckpoint = cpe.Error(), cpe.Size
	}
	return g.reportVerify(out, origin)
}

func (g *globals) verifyOnServer(cmd *cobra.Command) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	v, err := c.VerifyAudit(cmd.Context())
	if err != nil {
		return err
	}
	return g.reportVerify(v, "")
}

func (g *globals) reportVerify(v api.Verify, origin string) error {
	if g.json() {
		if err := g.printJSON(v); err != nil {
			return err
		}
	} else if v.OK {
		if origin != "" {
			origin = " of " + origin
		}
		fmt.Fprintf(g.stdout, "audit log%s OK: %d records, head %s, root %s; %d checkpoints verified, signed up to record %d\n",
			origin, v.Records, v.Head, base64.StdEncoding.EncodeToString(v.Root), v.Checkpoints, v.Signed)
		if v.Signed < v.Records {
			fmt.Fprintf(g.stdout, "records after %d are not covered by a signed checkpoint yet\n", v.Signed)
		}
	} else {
		fmt.Fprintf(g.stdout, "audit log BROKEN: %s\n", v.Error)
	}
	if !v.OK {
		return exitError{1}
	}
	return nil
}

func newAuditExport(g *globals) *cobra.Command {
	var since string
	cmd := &cobra.Command{
		Use:   "export [--since DURATION|TIME] > FILE.jsonl",
		Short: "Write the audit log, byte-exact, with its signed checkpoints, as JSON Lines",
		Long: `Write the audit log as JSON Lines to stdout: a header, the signed
checkpoints that cover the records, and the records with their data exactly
as stored. The server signs a checkpoint first, so that the last record
exported is covered. Verify the file anywhere with
lapse audit verify --file FILE --key PUBKEY.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			s, err := g.parseTime("since", since)
			if err != nil {
				return err
			}
			w := bufio.NewWriter(g.stdout)
			if err := c.Export(cmd.Context(), s, w); err != nil {
				return err
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only records since this long ago (1h, 7d) or this RFC 3339 time")
	return cmd
}

func newAuditCheckpoint(g *globals) *cobra.Command {
	var sign bool
	cmd := &cobra.Command{
		Use:   "checkpoint [--sign]",
		Short: "Show the latest signed checkpoint of the audit log (--sign: sign one now)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			var cp api.Checkpoint
			if sign {
				cp, err = c.SignCheckpoint(cmd.Context())
			} else {
				cp, err = c.Checkpoint(cmd.Context())
			}
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(cp)
			}
			fmt.Fprintf(g.stdout, "size:  %d\nroot:  %s\ntime:  %s\nkey:   %s\n\n%s", cp.Size,
				base64.StdEncoding.EncodeToString(cp.Root), cp.Time.UTC().Format(time.RFC3339), cp.Key, cp.Note)
			return nil
		},
	}
	cmd.Flags().BoolVar(&sign, "sign", false, "sign a checkpoint of the log as it is now (admins)")
	return cmd
}

func newAuditKey(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Print the public key that verifies checkpoints and evidence (pin it)", Args: cobra.NoArgs}
	return fetch(g, cmd, func(ctx context.Context, c *client.Client, _ []string) (api.AuditKey, error) {
		return c.AuditKey(ctx)
	}, func(k api.AuditKey) error {
		fmt.Fprintln(g.stdout, k.Key)
		return nil
	})
}

func newAuditProof(g *globals) *cobra.Command {
	var (
		size int64
		key  string
	)
	cmd := &cobra.Command{
		Use:   "proof SEQ [--size N] [--key PUBKEY]",
		Short: "Prove that one audit record is in the signed log, and check the proof here",
		Long: `Fetch the record SEQ with its Merkle inclusion proof against the latest
signed checkpoint (or the one of size N) and check here: the checkpoint's
signature, the record's hash, and the proof. Pass --key to check against
the key you pinned; without it the server's key is used, which proves
less.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var seq int64
			if _, err := fmt.Sscan(args[0], &seq); err != nil || seq < 1 {
				return fmt.Errorf("SEQ: want a record number, got %q", args[0])
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			pinned := key != ""
			if pinned {
				if key, err = readKey(key); err != nil {
					return err
				}
			} else {
				k, err := c.AuditKey(cmd.Context())
				if err != nil {
					return err
				}
				key = k.Key
			}
			var buf bytes.Buffer
			if err := c.Proof(cmd.Context(), seq, size, &buf); err != nil {
				return err
			}
			pr, err := auditlog.ParseProvenRecord(buf.Bytes())
			if err != nil {
				return err
			}
			if len(pr.Checkpoint) == 0 {
				return fmt.Errorf("no checkpoint of size %d was signed: nothing to check the proof against", size)
			}
			cp, err := pr.Verify(key)
			if g.json() {
				if perr := g.printJSON(map[string]any{"ok": err == nil, "record": pr.Record, "proof": pr.Proof, "checkpoint": string(pr.Checkpoint), "error": errString(err)}); perr != nil {
					return perr
				}
			} else if err == nil {
				fmt.Fprintf(g.stdout, "record %d (%s, %s) is in the log of %s: included in the checkpoint of size %d signed %s\n",
					pr.Record.Seq, pr.Record.Type, pr.Record.Hash, cp.Origin, cp.Size, cp.Time.UTC().Format(time.RFC3339))
				if !pinned {
					fmt.Fprintln(g.stderr, "checked with the key the server gave; pass --key to check against a key you pinned")
				}
			} else {
				fmt.Fprintf(g.stdout, "proof FAILED: %v\n", err)
			}
			if err != nil {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().Int64Var(&size, "size", 0, "prove against the checkpoint of this tree size (default the latest)")
	cmd.Flags().StringVar(&key, "key", "", "the audit log's public key you pinned (or a file holding it)")
	return cmd
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
