package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// healthcheckTimeout bounds one probe, connection and answer included.
const healthcheckTimeout = 3 * time.Second

// healthcheck asks the server in this container whether it is ready: it GETs /readyz on the
// loopback address at the port of EDUTRACK_HTTP_ADDR (default :8080), or the URL given with
// -url, and fails unless the answer is 200. The image has no shell and no curl, so container
// health checks run `edutrack healthcheck`.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "", "URL to probe (default http://127.0.0.1<port of EDUTRACK_HTTP_ADDR>/readyz)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("healthcheck: unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *target == "" {
		addr := getenv("EDUTRACK_HTTP_ADDR")
		if addr == "" {
			addr = ":8080"
		}
		_, port, err := net.SplitHostPort(addr)
		if err != nil || port == "" {
			return fmt.Errorf("healthcheck: EDUTRACK_HTTP_ADDR %q: want host:port such as :8080", addr)
		}
		*target = "http://" + net.JoinHostPort("127.0.0.1", port) + "/readyz"
	}

	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *target, nil)
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
			return fmt.Errorf("healthcheck: %s answered %s", *target, resp.Status)
		}
		return fmt.Errorf("healthcheck: %s answered %s: %s", *target, resp.Status, detail)
	}
	fmt.Fprintf(stdout, "ok: %s answered %s\n", *target, resp.Status)
	return nil
}
