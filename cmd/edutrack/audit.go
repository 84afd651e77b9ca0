package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/edutrack/edutrack/eventstore/sqlitelog"
)

// newAuditCmd is `edutrack audit`, whose one command is verify.
func newAuditCmd(getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit <command>",
		Short: "check the event log: verify recomputes its hash chains",
		// Any word but verify after audit is a mistake, and so is none: RunE says so.
		Args: cobra.ArbitraryArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError{errors.New("audit: the only audit command is verify")}
		},
	}
	cmd.AddCommand(newAuditVerifyCmd(getenv))
	return cmd
}

// newAuditVerifyCmd checks the embedded log's hash chains. It only reads, so it can run beside a
// live server.
func newAuditVerifyCmd(getenv func(string) string) *cobra.Command {
	dataDir := getenv("EDUTRACK_DATA_DIR")
	if dataDir == "" {
		dataDir = "./data"
	}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "recompute the event log's hash chains and name the first altered or removed event",
		// It has always ignored stray arguments; refusing them would be a change of its own.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := filepath.Join(dataDir, "events.db")
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("audit verify: %w", err)
			}
			rep, err := sqlitelog.Verify(cmd.Context(), path, sqlitelog.VerifyOptions{})
			if err != nil {
				return fmt.Errorf("audit verify: %w", err)
			}
			if rep.Failed() {
				for _, p := range rep.Problems {
					fmt.Fprintf(cmd.OutOrStdout(), "TAMPERED: %s\n", p)
				}
				return fmt.Errorf("audit verify: the event log was tampered with at position %d", rep.Problems[0].Position)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: %d events in %d streams, every chain intact\n", rep.Events, rep.Streams)
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", dataDir, "directory of the embedded stores (EDUTRACK_DATA_DIR)")
	return cmd
}
