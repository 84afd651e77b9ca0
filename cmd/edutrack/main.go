// Command edutrack is EduTrack's one binary: `edutrack serve` runs the service; other
// subcommands operate it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/edutrack/edutrack/eventstore/sqlitelog"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "edutrack:", err)
		os.Exit(1)
	}
}

const usage = `usage: edutrack <command> [flags]

commands:
  serve          run EduTrack (HTTP API on EDUTRACK_HTTP_ADDR, data under EDUTRACK_DATA_DIR)
  projections    operate the read models of a running server: list, rebuild, dead-letters, skip, retry
  audit verify   recompute the event log's hash chains and name the first altered or removed event
  healthcheck    exit 0 when the server on this machine is ready (for container health checks)
  token          mint a bearer token signed with the configured key: token --sub ID --role ROLE [--ttl 1h]

Run 'edutrack <command> -h' for the flags of a command.`

// run is the whole program. ready, if not nil, learns the HTTP address once it listens.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready func(addr string)) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		cfg, err := loadConfig(args[1:], getenv, stderr)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stderr, ready)
	case "audit":
		if len(args) < 2 || args[1] != "verify" {
			fmt.Fprintln(stderr, usage)
			return errors.New("audit: the only audit command is verify")
		}
		return auditVerify(ctx, args[2:], getenv, stdout, stderr)
	case "projections":
		return projectionsCmd(ctx, args[1:], getenv, stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, args[1:], getenv, stdout, stderr)
	case "token":
		return tokenCmd(args[1:], getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// auditVerify checks the embedded log's hash chains. It only reads, so it can run beside a live
// server.
func auditVerify(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := getenv("EDUTRACK_DATA_DIR")
	if def == "" {
		def = "./data"
	}
	dataDir := fs.String("data-dir", def, "directory of the embedded stores (EDUTRACK_DATA_DIR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := filepath.Join(*dataDir, "events.db")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	rep, err := sqlitelog.Verify(ctx, path)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	if rep.Problem != nil {
		fmt.Fprintf(stdout, "TAMPERED: %s\n", rep.Problem)
		return fmt.Errorf("audit verify: the event log was tampered with at position %d", rep.Problem.Position)
	}
	fmt.Fprintf(stdout, "ok: %d events in %d streams, every chain intact\n", rep.Events, rep.Streams)
	return nil
}
