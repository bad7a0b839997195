package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/eccheck/eccheck/run"
)

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print eccheck's version",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(a.stdout, run.Version)
			return err
		},
	}
}
