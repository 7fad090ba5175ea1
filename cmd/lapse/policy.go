package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/lapse-access/lapse"
	"github.com/lapse-access/lapse/config"
	"github.com/lapse-access/lapse/policy"
)

// buildEngine compiles the policies in force for cfg: the built-in ones from
// the roles' requesters, approvers and approvals, and the Cedar files in the
// policies folder, if any.
func buildEngine(cfg *config.Config) (*policy.Engine, error) {
	catalog := &lapse.Catalog{Resources: cfg.Resources}
	builtin, err := policy.Builtin(catalog)
	if err != nil {
		return nil, fmt.Errorf("built-in policies: %w", err)
	}
	sets := []*policy.Set{builtin}
	if cfg.Policies != "" {
		set, err := policy.Load(cfg.Policies)
		if err != nil {
			return nil, err
		}
		sets = append(sets, set)
	}
	return policy.New(catalog, sets...)
}

// decider is the policy engine in force; a reload swaps it whole.
type decider struct{ p atomic.Pointer[policy.Engine] }

func (d *decider) Decide(in lapse.DecisionInput) lapse.Decision { return d.p.Load().Decide(in) }

func newPolicy(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Test and explain the Cedar policies, offline from a config file"}
	var cfgFile string
	cmd.PersistentFlags().StringVar(&cfgFile, "config", "lapse.yaml", "the config whose resources and policies to use")
	load := func() (*config.Config, *policy.Engine, error) {
		cfg, err := loadConfig(cfgFile)
		if err != nil {
			return nil, nil, err
		}
		e, err := buildEngine(cfg)
		return cfg, e, err
	}

	test := &cobra.Command{
		Use:   "test DIR",
		Short: "Run the YAML policy tests (*.yaml) in DIR; exit 1 on any mismatch",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, e, err := load()
			if err != nil {
				return err
			}
			files, err := filepath.Glob(filepath.Join(args[0], "*.yaml"))
			if err != nil {
				return err
			}
			if len(files) == 0 {
				return fmt.Errorf("no *.yaml test files in %s", args[0])
			}
			failed := 0
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				rep, err := policy.RunTests(e, data, g.clock())
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				for _, fl := range rep.Failures {
					fmt.Fprintf(g.stdout, "FAIL %s: %s\n", filepath.Base(f), fl)
				}
				fmt.Fprintf(g.stdout, "%s: %d cases, %d checks, %d failed\n", filepath.Base(f), rep.Cases, rep.Checks, len(rep.Failures))
				failed += len(rep.Failures)
			}
			if failed > 0 {
				return exitError{1}
			}
			return nil
		},
	}

	var c policy.Case
	var country string
	explain := &cobra.Command{
		Use:   "explain --user U --resource R --role X [--for 1h] [--ip IP] [--country CC] [--managed]",
		Short: "Print the decision for each action and why",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, e, err := load()
			if err != nil {
				return err
			}
			if c.Groups == nil {
				for _, u := range cfg.Users {
					if u.Name == c.User {
						c.Groups = u.Groups
					}
				}
			}
			c.Context.Network.Country = country
			if cmd.Flags().Changed("managed") {
				m, _ := cmd.Flags().GetBool("managed")
				c.Context.Device.Managed = &m
			}
			in, err := c.Input(e, lapse.PolicyRequest, g.clock())
			if err != nil {
				return err
			}
			out := e.Explain(in)
			if g.json() {
				return g.printJSON(out)
			}
			fmt.Fprintf(g.stdout, "%s (groups %v) asking for %s on %s for %s; policies %s\n", c.User, c.Groups, c.Role, c.Resource, c.Duration, e.Hash())
			for _, d := range out {
				verdict := "deny"
				if d.Decision.Allow {
					verdict = "allow"
				}
				fmt.Fprintf(g.stdout, "\n%-12s %s", d.Action+":", verdict)
				if d.Action == lapse.PolicyAutoApprove && !d.Decision.Allow {
					fmt.Fprintf(g.stdout, " (needs %d approval(s))", d.Decision.Approvals)
				}
				fmt.Fprintf(g.stdout, "\n  by:      %s\n", strings.Join(d.Decision.Policies, ", "))
				for _, r := range d.Decision.Reasons {
					fmt.Fprintf(g.stdout, "  because: %s\n", r)
				}
				for _, er := range d.Errors {
					fmt.Fprintf(g.stdout, "  error:   %s\n", er)
				}
			}
			return nil
		},
	}
	f := explain.Flags()
	f.StringVar(&c.User, "user", "", "user asking (groups from the config, or --groups)")
	f.StringSliceVar(&c.Groups, "groups", nil, "the user's groups")
	f.StringVar(&c.Resource, "resource", "", "resource")
	f.StringVar(&c.Role, "role", "", "role")
	f.StringVar(&c.Duration, "for", "1h", "duration")
	f.StringVar(&c.Reason, "reason", "", "reason")
	f.StringVar(&c.Context.Device.ID, "device", "", "device id")
	f.StringVar(&c.Context.Network.IP, "ip", "", "client IP address")
	f.StringVar(&country, "country", "", "client country (ISO 3166-1 alpha-2)")
	f.Bool("managed", false, "the device is managed")
	for _, n := range []string{"user", "resource", "role"} {
		_ = explain.MarkFlagRequired(n)
	}
	cmd.AddCommand(test, explain)
	return cmd
}
