// Package cli is the sqlite-graft command line: flags, logging and exit
// codes. Every command hands its work to the stage packages (via graft).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1 // a step failed: verification, compile, check, push
	ExitUsage  = 2 // bad flags or arguments
)

type usageError struct{ error }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// Main runs the CLI and returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	// SIGTERM or SIGINT cancels the context: every step stops (runc
	// containers killed, temporary directories removed, nothing pushed) and
	// the command returns. A second signal ends the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitStatus(root) // ExitOK unless the command set one (upstream: 3, 4)
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "sqlite-graft: %v\nRun 'sqlite-graft --help' for usage.\n", err)
		return ExitUsage
	}
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "sqlite-graft: error: stopped (%v): %v\n", context.Cause(ctx), err)
		return ExitFailed
	}
	fmt.Fprintf(stderr, "sqlite-graft: error: %v\n", err)
	return ExitFailed
}

type app struct {
	global GlobalOptions
	stdout io.Writer
	stderr io.Writer
	log    *logrus.Logger
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "sqlite-graft",
		Short: "Graft a pinned, verified SQLite onto a container base image",
		Long: `sqlite-graft downloads the official SQLite at a pinned version, verifies it
against the SHA3-256 hashes sqlite.org published, compiles it with the target's
own C toolchain into a drop-in libsqlite3.so.0 plus a matching sqlite3 shell,
and checks the result in a real process.

It exists because of the SQLite WAL-reset bug (3.7.0 through 3.51.2, fixed in
3.51.3): two connections writing or checkpointing a WAL database at the same
instant can corrupt it, and distributions such as Alpine 3.21/3.22 and Debian
12/13 still ship affected versions. There is no CVE, so no scanner flags it.`,
		Example: `  sqlite-graft build --local                      # the default image into ./out
  sqlite-graft build --local --push ghcr.io/acme/alpine
  sqlite-graft versions
  sqlite-graft fetch --out ./src
  sqlite-graft compile --libc musl --out ./out/lib
  sqlite-graft check --lib ./out/lib/libsqlite3.so.0 --stress`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			l, err := a.global.Logger(a.stderr)
			if err != nil {
				return err
			}
			a.log = l
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	a.global.AddFlags(root.PersistentFlags())
	root.AddCommand(a.versionsCmd(), a.fetchCmd(), a.compileCmd(), a.checkCmd(), a.buildCmd(), a.upstreamCmd(), a.pinsCmd())
	return root
}

// noArgs rejects positional arguments as a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args)
	}
	return nil
}
