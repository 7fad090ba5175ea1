package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newConfig(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Work with lapse.yaml"}
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Check a config file; print every problem with its line and column",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(args[0])
			if err == nil {
				// The policies must compile against the schema and the catalog.
				_, err = buildEngine(cfg)
			}
			if err != nil {
				fmt.Fprintln(g.stderr, err)
				return exitError{1}
			}
			roles := 0
			for _, r := range cfg.Resources {
				roles += len(r.Roles)
			}
			fmt.Fprintf(g.stdout, "%s is valid: %d users, %d connectors, %d resources, %d roles\n", args[0], len(cfg.Users), len(cfg.Connectors), len(cfg.Resources), roles)
			return nil
		},
	})
	return cmd
}
