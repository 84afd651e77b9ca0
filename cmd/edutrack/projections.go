package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/edutrack/edutrack/projections"
)

// newProjectionsCmd is `edutrack projections`: it operates the projections of a running server
// through its admin API.
func newProjectionsCmd(getenv func(string) string) *cobra.Command {
	var server string
	cmd := &cobra.Command{
		Use:   "projections <command>",
		Short: "operate the read models of a running server: list, rebuild, dead-letters, skip, retry",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("projections: unknown command %q", args[0])}
			}
			return nil
		},
		RunE: func(*cobra.Command, []string) error { return usageError{errors.New("projections: no command given")} },
	}
	cmd.PersistentFlags().StringVar(&server, "server", defaultServer(getenv), "URL of the EduTrack process that runs the projections (EDUTRACK_ADMIN_URL)")
	client := func() adminClient {
		return adminClient{base: strings.TrimRight(server, "/") + "/v1/admin/projections", http: &http.Client{Timeout: 30 * time.Second},
			token:   func() (string, error) { return adminToken(getenv) },
			missing: projections.ErrUnknownProjection, serves: "projection operations (is it a process with the project role?)"}
	}
	cmd.AddCommand(projectionsList(client), projectionsRebuild(client), projectionsDeadLetters(client),
		projectionsSkip(client), projectionsRetry(client))
	return cmd
}

// wantArgs refuses a projections command given other than n arguments.
func wantArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("projections %s: want %d argument(s), got %d", cmd.Name(), n, len(args))}
		}
		return nil
	}
}

func projectionsList(client func() adminClient) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "every projection: version, generation, position, head, lag, status, dead letters",
		Args:  wantArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Items []projections.State `json:"items"`
			}
			if err := client().do(cmd.Context(), http.MethodGet, "/", nil, &out); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), out.Items)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tGENERATION\tPOSITION\tHEAD\tLAG\tSTATUS\tDEAD LETTERS\tREBUILD")
			for _, s := range out.Items {
				rebuild := "-"
				if s.Rebuild != nil {
					rebuild = fmt.Sprintf("generation %d at %d, %s", s.Rebuild.Generation, s.Rebuild.Position, rate(s.Rebuild))
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%s\n", s.Name, s.Version, s.Generation, s.Position, s.Head, s.Lag, s.Status, s.DeadLetters, rebuild)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

func projectionsRebuild(client func() adminClient) *cobra.Command {
	var detach bool
	cmd := &cobra.Command{
		Use:   "rebuild NAME",
		Short: "build NAME anew beside the live read models; it takes over once caught up",
		Args:  wantArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, c := args[0], client()
			var st projections.State
			if err := c.do(cmd.Context(), http.MethodPost, "/"+url.PathEscape(name)+"/rebuild", nil, &st); err != nil {
				return err
			}
			if st.Rebuild == nil {
				return fmt.Errorf("projections rebuild: the server started no rebuild of %s", name)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "rebuilding %s: generation %d, beside live generation %d\n", name, st.Rebuild.Generation, st.Generation)
			if detach {
				return nil
			}
			return follow(cmd.Context(), c, name, st.Rebuild.Generation, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVar(&detach, "detach", false, "start the rebuild and return without following it")
	return cmd
}

func projectionsDeadLetters(client func() adminClient) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "dead-letters NAME",
		Short: "the events NAME could not apply, and what became of each",
		Args:  wantArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Items []projections.DeadLetter `json:"items"`
			}
			if err := client().do(cmd.Context(), http.MethodGet, "/"+url.PathEscape(args[0])+"/dead-letters", nil, &out); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), out.Items)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "POSITION\tGENERATION\tSTATE\tTYPE\tEVENT ID\tAT\tERROR")
			for _, d := range out.Items {
				fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\n", d.Position, d.Generation, d.State, d.EventType, d.EventID, d.At.Format(time.RFC3339), d.Error)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

func projectionsSkip(client func() adminClient) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "skip NAME POSITION",
		Short: "pass over the event NAME is stalled at (recorded, with --reason)",
		Args:  wantArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			at, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil || at == 0 {
				return fmt.Errorf("projections skip: POSITION %q: want the position of the event the projection is stalled at", args[1])
			}
			body := map[string]any{"position": at, "reason": reason}
			var st projections.State
			if err := client().do(cmd.Context(), http.MethodPost, "/"+url.PathEscape(name)+"/skip", body, &st); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s skipped the event at %d; it is %s\n", name, at, st.Status)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the event is passed over; recorded with the skip")
	return cmd
}

func projectionsRetry(client func() adminClient) *cobra.Command {
	return &cobra.Command{
		Use:   "retry NAME",
		Short: "apply the event NAME is stalled at again, after a fix",
		Args:  wantArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var st projections.State
			if err := client().do(cmd.Context(), http.MethodPost, "/"+url.PathEscape(args[0])+"/retry", nil, &st); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s retries the event it stalled at; it is %s\n", args[0], st.Status)
			return nil
		},
	}
}

// defaultServer is the admin API of the server on this machine.
func defaultServer(getenv func(string) string) string {
	if u := getenv("EDUTRACK_ADMIN_URL"); u != "" {
		return u
	}
	port := "8080"
	if _, p, err := net.SplitHostPort(getenv("EDUTRACK_HTTP_ADDR")); err == nil && p != "" {
		port = p
	}
	return "http://" + net.JoinHostPort("127.0.0.1", port)
}

func rate(p *projections.Progress) string {
	left := "time left unknown"
	if p.SecondsLeft > 0 {
		left = (time.Duration(p.SecondsLeft) * time.Second).String() + " left"
	}
	return fmt.Sprintf("%.0f events/s, %s", p.EventsPerSecond, left)
}

// follow shows a rebuild's progress until its generation is live: a progress bar on a
// terminal, a plain line every few seconds elsewhere.
func follow(ctx context.Context, c adminClient, name string, gen int, stdout, stderr io.Writer) error {
	var bar *progressbar.ProgressBar
	if f, ok := stdout.(*os.File); ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(stdout), progressbar.OptionSetWidth(30),
			progressbar.OptionSetPredictTime(false), progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	poll := 500 * time.Millisecond
	lastLine := time.Time{}
	var unreachable time.Time
	for {
		var st projections.State
		err := c.do(ctx, http.MethodGet, "/"+url.PathEscape(name), nil, &st)
		switch {
		case err == nil:
			unreachable = time.Time{}
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errUnreachable):
			// The server may be restarting; a rebuild resumes where it stopped.
			if unreachable.IsZero() {
				unreachable = time.Now()
				fmt.Fprintf(stderr, "server unreachable; waiting for it (%v)\n", err)
			}
			if time.Since(unreachable) > 2*time.Minute {
				return err
			}
		default:
			return err
		}
		if err == nil {
			if st.Generation >= gen && st.Rebuild == nil {
				if bar != nil {
					bar.Finish()
				}
				fmt.Fprintf(stdout, "%s: generation %d is live at position %d\n", name, st.Generation, st.Position)
				return nil
			}
			if st.Rebuild == nil || st.Rebuild.Generation != gen {
				return fmt.Errorf("projections rebuild: generation %d of %s is no longer being built", gen, name)
			}
			p := st.Rebuild
			if p.Status == projections.StatusStalled {
				if bar != nil {
					bar.Exit()
				}
				return fmt.Errorf("the rebuild of %s is stalled at a dead letter: see `edutrack projections dead-letters %s`", name, name)
			}
			if bar != nil {
				bar.ChangeMax64(int64(max(st.Head, 1)))
				bar.Set64(int64(p.Position))
				bar.Describe(fmt.Sprintf("%s generation %d: %s", name, gen, rate(p)))
			} else if time.Since(lastLine) >= 5*time.Second {
				lastLine = time.Now()
				fmt.Fprintf(stdout, "%s generation %d: position %d of %d, %s\n", name, gen, p.Position, st.Head, rate(p))
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// adminClient calls the admin API.
type adminClient struct {
	base  string
	http  *http.Client
	token func() (string, error) // a fresh admin token for each call: following a rebuild can outlast one
	// missing is the error of the admin API's own 404s; serves names its operations, for any
	// other 404.
	missing error
	serves  string
}

var errUnreachable = errors.New("cannot reach the EduTrack server")

func (c adminClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	target := c.base + path
	if path == "/" {
		target = c.base
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != nil {
		token, err := c.token()
		if err != nil {
			return fmt.Errorf("an admin token for %s: %w", c.base, err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w at %s: %v", errUnreachable, c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%w at %s: %v", errUnreachable, c.base, err)
	}
	if resp.StatusCode >= 300 {
		var p struct {
			Detail string `json:"detail"`
			Field  string `json:"field"`
		}
		detailed := json.Unmarshal(raw, &p) == nil && p.Detail != ""
		// Only the admin API names what is missing; any other 404 (EduTrack's own "no such route"
		// among them) comes from a process that does not serve the admin API.
		if resp.StatusCode == http.StatusNotFound && !strings.Contains(p.Detail, c.missing.Error()) {
			return fmt.Errorf("%s: %s serves no %s", resp.Status, c.base, c.serves)
		}
		if detailed {
			if p.Field != "" {
				return fmt.Errorf("%s (%s): %s", resp.Status, p.Field, p.Detail)
			}
			return fmt.Errorf("%s: %s", resp.Status, p.Detail)
		}
		return fmt.Errorf("%s from %s", resp.Status, target)
	}
	return json.Unmarshal(raw, out)
}
