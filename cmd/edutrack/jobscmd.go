package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/edutrack/edutrack/reactors"
)

// newJobsCmd is `edutrack jobs`: it operates the job queue of a running server through its
// admin API.
func newJobsCmd(getenv func(string) string) *cobra.Command {
	var server string
	cmd := &cobra.Command{
		Use:   "jobs <command>",
		Short: "operate the job queue of a running server: list, retry, cancel",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("jobs: unknown command %q", args[0])}
			}
			return nil
		},
		RunE: func(*cobra.Command, []string) error { return usageError{errors.New("jobs: no command given")} },
	}
	cmd.PersistentFlags().StringVar(&server, "server", defaultServer(getenv), "URL of an EduTrack process with the react or work role (EDUTRACK_ADMIN_URL)")
	client := func() adminClient {
		return adminClient{base: strings.TrimRight(server, "/") + "/v1/admin/jobs", http: &http.Client{Timeout: 30 * time.Second},
			token:   func() (string, error) { return adminToken(getenv) },
			missing: reactors.ErrJobNotFound, serves: "job operations (is it a process with the react or work role?)"}
	}
	cmd.AddCommand(jobsList(client), jobsAct(client, "retry", "run job ID again now, a discarded or cancelled one too"),
		jobsAct(client, "cancel", "stop job ID from running again"))
	return cmd
}

func jobsList(client func() adminClient) *cobra.Command {
	var state, kind string
	var limit int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "the newest jobs, with their state, attempts and last error",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("jobs list: unexpected arguments: %s", strings.Join(args, " "))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if state != "" {
				q.Set("state", state)
			}
			if kind != "" {
				q.Set("kind", kind)
			}
			var out struct {
				Items []reactors.Job `json:"items"`
			}
			if err := client().do(cmd.Context(), http.MethodGet, "?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), out.Items)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tKIND\tSTATE\tATTEMPTS\tCREATED\tLAST ERROR")
			for _, j := range out.Items {
				last := "-"
				if n := len(j.Errors); n > 0 {
					last = oneLine(j.Errors[n-1].Error, 100)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%s\t%s\n", j.ID, j.Kind, j.State, j.Attempt, j.MaxAttempts, j.CreatedAt.Format(time.RFC3339), last)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only jobs in this state: "+strings.Join(reactors.JobStates(), ", "))
	cmd.Flags().StringVar(&kind, "kind", "", "only jobs of this kind, such as enrollment_email")
	cmd.Flags().IntVar(&limit, "limit", 100, fmt.Sprintf("how many jobs at most, up to %d", reactors.MaxJobs))
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

// jobsAct is `edutrack jobs retry ID` or `edutrack jobs cancel ID`.
func jobsAct(client func() adminClient, op, short string) *cobra.Command {
	return &cobra.Command{
		Use:   op + " ID",
		Short: short,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("jobs %s: want 1 argument, the job's id; got %d", op, len(args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id <= 0 {
				return fmt.Errorf("jobs %s: ID %q: want a job's id, as `edutrack jobs list` shows it", op, args[0])
			}
			var j reactors.Job
			if err := client().do(cmd.Context(), http.MethodPost, "/"+strconv.FormatInt(id, 10)+"/"+op, nil, &j); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "job %d (%s) is %s\n", j.ID, j.Kind, j.State)
			return nil
		},
	}
}

// oneLine is s on one line, cut to n runes.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
