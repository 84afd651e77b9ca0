package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// healthcheckTimeout bounds one probe, connection and answer included.
const healthcheckTimeout = 3 * time.Second

// newHealthcheckCmd is `edutrack healthcheck`: it asks the server in this container whether it
// is ready. It GETs /readyz on the loopback address at the port of EDUTRACK_HTTP_ADDR (default
// :8080), or the URL given with --url, and fails unless the answer is 200. The image has no
// shell and no curl, so container health checks run `edutrack healthcheck`.
func newHealthcheckCmd(getenv func(string) string) *cobra.Command {
	var target string
	cmd := &cobra.Command{
		Use:   "healthcheck",
		Short: "exit 0 when the server on this machine is ready (for container health checks)",
		Args:  noArgs("healthcheck: "),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return healthcheck(cmd.Context(), target, getenv, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&target, "url", "", "URL to probe (default http://127.0.0.1<port of EDUTRACK_HTTP_ADDR>/readyz)")
	return cmd
}

// healthcheck probes target, or the server on this machine when target is empty.
func healthcheck(ctx context.Context, target string, getenv func(string) string, stdout io.Writer) error {
	if target == "" {
		addr := getenv("EDUTRACK_HTTP_ADDR")
		if addr == "" {
			addr = ":8080"
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil || port == "" {
			return fmt.Errorf("healthcheck: EDUTRACK_HTTP_ADDR %q: want host:port such as :8080", addr)
		}
		target = "http://" + net.JoinHostPort("127.0.0.1", port) + "/readyz"
	}

	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	// A probe of the process next to it goes through no proxy and keeps no connection.
	client := &http.Client{
		Timeout:   healthcheckTimeout,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	// The readiness document names the failing dependency; keep its start for the health log.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		detail := strings.TrimSpace(string(body))
		if detail == "" {
			return fmt.Errorf("healthcheck: %s answered %s", target, resp.Status)
		}
		return fmt.Errorf("healthcheck: %s answered %s: %s", target, resp.Status, detail)
	}
	fmt.Fprintf(stdout, "ok: %s answered %s\n", target, resp.Status)
	return nil
}
