package main

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/edutrack/edutrack/eventstore/sqlitelog"
)

// newAuditCmd is `edutrack audit`: verify checks the embedded log, accept takes it as it is.
func newAuditCmd(getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit <command>",
		Short: "check the event log: verify its hash chains and anchors, or accept it as it is after a failure",
		// Any other word after audit is a mistake, and so is none: RunE says so.
		Args: cobra.ArbitraryArgs,
		RunE: func(*cobra.Command, []string) error {
			return usageError{errors.New("audit: the audit commands are verify and accept")}
		},
	}
	cmd.AddCommand(newAuditVerifyCmd(getenv), newAuditAcceptCmd(getenv))
	return cmd
}

// newAuditVerifyCmd checks the embedded log's hash chains and, with the anchor key, its anchors.
// It only reads, so it can run beside a live server.
func newAuditVerifyCmd(getenv func(string) string) *cobra.Command {
	s := readSettings(getenv)
	var expect string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "check the event log's hash chains and anchors, and name what was altered, rewritten, forged or cut",
		// It has always ignored stray arguments; refusing them would be a change of its own.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := sqlitelog.VerifyOptions{}
			if expect != "" {
				e, err := parseExpectedAnchor(expect)
				if err != nil {
					return usageError{fmt.Errorf("audit verify: --expect-anchor: %w", err)}
				}
				opts.Expect = &e
			}
			path, key, err := s.auditedLog()
			if err != nil {
				return fmt.Errorf("audit verify: %w", err)
			}
			opts.Key = key
			rep, err := sqlitelog.Verify(cmd.Context(), path, opts)
			if err != nil {
				return fmt.Errorf("audit verify: %w", err)
			}
			out := cmd.OutOrStdout()
			printProblems(out, rep)
			switch {
			case rep.Failed():
				n, noun := len(rep.Problems)+rep.More, "problems"
				if n == 1 {
					noun = "problem"
				}
				return fmt.Errorf("audit verify: the event log failed verification: %d %s (see the README, \"When audit verify fails\")", n, noun)
			case rep.Anchors > 0 && key == nil:
				fmt.Fprintf(out, "chains ok: %d events in %d streams; %d anchors not checked\n", rep.Events, rep.Streams, rep.Anchors)
				return errors.New("audit verify: the event log has anchors, and no anchor key was given to check them: " +
					"set EDUTRACK_ANCHOR_KEY_FILE or --anchor-key-file to the key EduTrack anchors it with")
			}
			fmt.Fprintf(out, "ok: %d events in %d streams, every chain intact; %s\n", rep.Events, rep.Streams, anchorsSaid(rep, key != nil))
			return nil
		},
	}
	cmd.Flags().StringVar(&expect, "expect-anchor", "", "an anchor the server logged, as SEQ:MAC (its MAC, or at least its first 16 hex digits): "+
		"the log must hold it unchanged, which shows the latest anchors deleted, or an older copy of the file")
	s.addFlags(cmd.Flags(), "data-dir", "anchor-key-file")
	return cmd
}

// printProblems writes each problem on a line of its own; one an operator accepted says so.
func printProblems(out io.Writer, rep sqlitelog.Report) {
	for _, p := range rep.Problems {
		if p.AcceptedBy > 0 {
			fmt.Fprintf(out, "accepted (anchor %d): %s\n", p.AcceptedBy, p)
		} else {
			fmt.Fprintf(out, "TAMPERED: %s\n", p)
		}
	}
	if rep.More > 0 {
		fmt.Fprintf(out, "TAMPERED: and %d more\n", rep.More)
	}
}

// anchorsSaid is what an intact log's report says of its anchors.
func anchorsSaid(rep sqlitelog.Report, keyed bool) string {
	if rep.Anchors == 0 {
		if !keyed {
			return "the log has no anchors, and no anchor key was given (chains alone do not show a stream rewritten with its hashes, " +
				"an event forged while EduTrack was stopped, or a cut tail)"
		}
		return "the log has no anchors yet"
	}
	a := rep.Last
	s := fmt.Sprintf("%d anchors verified with key %s, the last %d:%s (%s, head %d, %s)", rep.Anchors, rep.KeyID, a.Seq,
		hex.EncodeToString(a.MAC), a.Kind, a.Head, a.At.Format(time.RFC3339))
	if rep.Unanchored > 0 {
		s += fmt.Sprintf("; the %d events after it are not anchored yet (EduTrack is running, or stopped without its shutdown anchor)", rep.Unanchored)
	}
	return s
}

// parseExpectedAnchor reads SEQ:MAC, the MAC in hex, whole or its first 16 digits at least.
func parseExpectedAnchor(s string) (sqlitelog.ExpectedAnchor, error) {
	seq, mac, ok := strings.Cut(s, ":")
	n, err := strconv.ParseUint(seq, 10, 64)
	if !ok || err != nil || n == 0 {
		return sqlitelog.ExpectedAnchor{}, fmt.Errorf("%q: want SEQ:MAC, such as 42:9f86d081884c7d65", s)
	}
	b, err := hex.DecodeString(mac)
	if err != nil || len(b) < 8 {
		return sqlitelog.ExpectedAnchor{}, fmt.Errorf("%q: the MAC must be hex, at least 16 digits", s)
	}
	return sqlitelog.ExpectedAnchor{Seq: n, MAC: b}, nil
}

// newAuditAcceptCmd anchors the log as it is, after a failed verification has been looked into.
func newAuditAcceptCmd(getenv func(string) string) *cobra.Command {
	s := readSettings(getenv)
	var reason string
	cmd := &cobra.Command{
		Use:   "accept --reason TEXT",
		Short: "anchor the event log as it is now, once a failed verification has been looked into (EduTrack must be stopped)",
		Args:  noArgs("audit accept: "),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if strings.TrimSpace(reason) == "" {
				return usageError{errors.New("audit accept: --reason is required: it is kept in the anchor")}
			}
			path, key, err := s.auditedLog()
			if err != nil {
				return fmt.Errorf("audit accept: %w", err)
			}
			if key == nil {
				return errors.New("audit accept: no anchor key: set EDUTRACK_ANCHOR_KEY_FILE or --anchor-key-file to the key EduTrack anchors the log with")
			}
			rep, err := sqlitelog.Verify(cmd.Context(), path, sqlitelog.VerifyOptions{Key: key})
			if err != nil {
				return fmt.Errorf("audit accept: %w", err)
			}
			a, err := sqlitelog.Accept(path, sqlitelog.Options{Anchors: sqlitelog.AnchorOptions{Key: key}}, reason)
			if err != nil {
				return fmt.Errorf("audit accept (EduTrack must be stopped): %w", err)
			}
			out := cmd.OutOrStdout()
			printProblems(out, rep)
			fmt.Fprintf(out, "accepted: anchor %d:%s takes the log as it is, up to position %d; verify reports what it found before as accepted\n",
				a.Seq, hex.EncodeToString(a.MAC), a.Head)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the log is taken as it is (kept in the anchor)")
	s.addFlags(cmd.Flags(), "data-dir", "anchor-key-file")
	return cmd
}

// auditedLog is the embedded log the audit commands work on, and the key to check it with: the
// configured one, else the one the embedded default keeps, if there is one. They never generate
// a key.
func (s settings) auditedLog() (path string, key []byte, err error) {
	path = filepath.Join(s.dataDir, "events.db")
	if _, err := os.Stat(path); err != nil {
		return "", nil, err
	}
	switch {
	case s.anchorKey != "" && s.anchorKeyFile != "":
		return "", nil, errors.New("EDUTRACK_ANCHOR_KEY and EDUTRACK_ANCHOR_KEY_FILE: set one of them")
	case s.anchorKey != "":
		if len(s.anchorKey) < sqlitelog.MinAnchorKeyLen {
			return "", nil, fmt.Errorf("EDUTRACK_ANCHOR_KEY: %d bytes; want at least %d", len(s.anchorKey), sqlitelog.MinAnchorKeyLen)
		}
		return path, []byte(s.anchorKey), nil
	case s.anchorKeyFile != "":
		key, err := readAnchorKeyFile(s.anchorKeyFile)
		if err != nil {
			return "", nil, fmt.Errorf("EDUTRACK_ANCHOR_KEY_FILE: %w", err)
		}
		return path, key, nil
	case s.configDir != "":
		key, err := readOwnKey(defaultAnchorKeyFile(s.configDir), "the anchor key")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", nil, err
		}
		return path, key, nil
	}
	return path, nil, nil
}
