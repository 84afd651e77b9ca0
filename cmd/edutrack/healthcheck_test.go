package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// readyzServer answers /readyz with status and body, and 404 elsewhere.
func readyzServer(t *testing.T, status int, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// envOf is a getenv over a map.
func envOf(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestHealthcheck(t *testing.T) {
	ready := readyzServer(t, http.StatusOK, `{"status":"ready"}`)
	notReady := readyzServer(t, http.StatusServiceUnavailable, `{"status":"not ready","checks":{"read_store":{"status":"failing"}}}`)
	_, readyPort, err := net.SplitHostPort(strings.TrimPrefix(ready.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	// A port that was open a moment ago and is closed now: nothing answers there.
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL + "/readyz"
	gone.Close()

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string // empty: healthcheck returns nil
	}{
		{name: "200 is healthy", args: []string{"-url", ready.URL + "/readyz"}},
		{name: "the port comes from EDUTRACK_HTTP_ADDR", env: map[string]string{"EDUTRACK_HTTP_ADDR": ":" + readyPort}},
		{name: "a host in EDUTRACK_HTTP_ADDR still probes the loopback", env: map[string]string{"EDUTRACK_HTTP_ADDR": "0.0.0.0:" + readyPort}},
		{name: "503 is unhealthy and names the failing check", args: []string{"-url", notReady.URL + "/readyz"}, wantErr: "503 Service Unavailable: {\"status\":\"not ready\",\"checks\":{\"read_store\""},
		{name: "another route's 404 is unhealthy", args: []string{"-url", ready.URL + "/healthz"}, wantErr: "404"},
		{name: "an unreachable server is unhealthy", args: []string{"-url", goneURL}, wantErr: "connection refused"},
		{name: "an invalid EDUTRACK_HTTP_ADDR is an error", env: map[string]string{"EDUTRACK_HTTP_ADDR": "localhost"}, wantErr: "EDUTRACK_HTTP_ADDR"},
		{name: "stray arguments are an error", args: []string{"now"}, wantErr: "unexpected arguments: now"},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), append([]string{"healthcheck"}, tc.args...), envOf(tc.env), &stdout, &stderr, nil)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("healthcheck: %v (stderr %q)", err, stderr.String())
				}
				if !strings.HasPrefix(stdout.String(), "ok: ") {
					t.Errorf("stdout = %q, want it to start with ok", stdout.String())
				}
				return
			}
			if err == nil {
				t.Fatalf("healthcheck succeeded, want an error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

// The default target is the loopback at :8080 when EDUTRACK_HTTP_ADDR is unset; nothing may be
// listening there, so only the URL in the error is checked, never success.
func TestHealthcheckDefaultsToPort8080(t *testing.T) {
	err := run(context.Background(), []string{"healthcheck"}, envOf(nil), &bytes.Buffer{}, &bytes.Buffer{}, nil)
	if err != nil && !strings.Contains(err.Error(), "http://127.0.0.1:8080/readyz") {
		t.Errorf("error = %q, want it to name http://127.0.0.1:8080/readyz", err)
	}
}

// A server that takes the connection and never answers fails the probe after its 3 s timeout.
func TestHealthcheckTimesOut(t *testing.T) {
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(hung.Close)
	start := time.Now()
	err := run(context.Background(), []string{"healthcheck", "-url", hung.URL + "/readyz"}, envOf(nil), &bytes.Buffer{}, &bytes.Buffer{}, nil)
	took := time.Since(start)
	if err == nil {
		t.Fatal("healthcheck succeeded against a server that never answers")
	}
	if took < healthcheckTimeout-100*time.Millisecond || took > healthcheckTimeout+2*time.Second {
		t.Errorf("healthcheck gave up after %s, want about %s", took, healthcheckTimeout)
	}
}
