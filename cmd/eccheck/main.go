// Command eccheck tells what a replicated data store really guarantees: it
// records histories of operations, checks them for linearizability,
// read-your-writes, monotonic reads, lost writes and counters, and measures
// how stale reads are.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/eccheck/eccheck/checkers"
	"github.com/eccheck/eccheck/db"
	"github.com/eccheck/eccheck/run"
)

// Exit codes: the one place they are decided.
const (
	exitValid    = 0 // every checker found the history valid
	exitInvalid  = 1 // anomalies found
	exitUnknown  = 2 // a checker could not decide (timeout, incomplete history)
	exitUsage    = 3 // bad flags, arguments or configuration
	exitInfra    = 4 // anything else: unreadable or malformed input, harness failure
	exitSignaled = 130
)

// usageError marks errors in how eccheck was called: the one type of them,
// shared with the packages that check a system's flags.
type usageError = db.UsageError

func usagef(format string, args ...any) error { return db.Usagef(format, args...) }

// verdictCode maps a composed verdict to its exit code.
func verdictCode(v checkers.Verdict) int {
	switch v {
	case checkers.Valid:
		return exitValid
	case checkers.Invalid:
		return exitInvalid
	}
	return exitUnknown
}

// app carries what commands write to, so tests can run them without a
// process.
type app struct {
	stdout, stderr io.Writer
	// verdict is set by commands that judge something; it decides the exit
	// code when they return no error.
	verdict checkers.Verdict
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "eccheck",
		Short: "Check what a replicated data store really guarantees",
		Long: `eccheck records histories of operations against a replicated store and checks
them for linearizability, read-your-writes, monotonic reads, lost writes and
counter bounds, and measures how stale reads are, in milliseconds.

Exit codes: 0 valid, 1 anomalies found, 2 unknown (a checker timed out or the
history is incomplete), 3 usage error, 4 any other failure.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       run.Version,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{Err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.AddCommand(newTestCmd(a), newCheckCmd(a), newMatrixCmd(a), newReportCmd(a), newExportCmd(a), newChecklistCmd(a), newStoreCmd(a), newImagesCmd(a), newClusterCmd(a), newNemesisCmd(a), newVersionCmd(a))
	return root
}

// execute runs eccheck with args and returns the exit code.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		if a.verdict == "" {
			return exitValid
		}
		return verdictCode(a.verdict)
	}
	fmt.Fprintf(stderr, "eccheck: %v\n", err)
	var ue usageError
	switch {
	case errors.As(err, &ue), isCobraUsage(err):
		return exitUsage
	case errors.Is(err, context.Canceled):
		return exitSignaled
	}
	return exitInfra
}

// isCobraUsage recognises the error cobra returns for an unknown command,
// which does not pass through the flag error func.
func isCobraUsage(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command")
}

// exactArgs is cobra.ExactArgs returning a usage error that names what is
// expected.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %s, got %d argument(s) (see '%s --help')", c.CommandPath(), what, len(args), c.CommandPath())
		}
		return nil
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
