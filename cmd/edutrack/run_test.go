package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantErr    string // empty: run returns nil
		wantStdout string
		wantStderr string
	}{
		{name: "prints usage and fails without a command", args: nil, wantErr: "no command given", wantStderr: "usage: edutrack"},
		{name: "prints usage on help", args: []string{"help"}, wantStdout: "usage: edutrack"},
		{name: "refuses an unknown command", args: []string{"migrate"}, wantErr: `unknown command "migrate"`, wantStderr: "usage: edutrack"},
		{name: "refuses stray arguments to serve", args: []string{"serve", "now"}, wantErr: "unexpected arguments: now"},
		{name: "refuses an invalid address before serving", args: []string{"serve", "-http-addr", "localhost"}, wantErr: "EDUTRACK_HTTP_ADDR"},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			dir := t.TempDir()
			getenv := func(k string) string {
				if k == "EDUTRACK_DATA_DIR" {
					return dir
				}
				return ""
			}
			err := run(t.Context(), tc.args, getenv, &stdout, &stderr, func(string) { t.Error("the server started") })
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("run: %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("run: %v, want an error containing %q", err, tc.wantErr)
			}
			if !strings.Contains(stdout.String(), tc.wantStdout) || (tc.wantStdout == "" && stdout.Len() > 0) {
				t.Errorf("stdout %q, want it to contain %q", stdout.String(), tc.wantStdout)
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    config
		wantErr []string // every part the error must name
	}{
		{
			name: "defaults to port 8080 and ./data",
			want: config{httpAddr: ":8080", dataDir: "./data", shutdownTimeout: 20 * time.Second, consistencyWait: 3 * time.Second,
				cacheEntries: 100_000, logLevel: slog.LevelInfo, roles: roles{write: true, project: true, read: true}, xapiHomePage: "https://edutrack.invalid",
				leaseTTL: 10 * time.Second},
		},
		{
			name: "reads the environment",
			env: map[string]string{"EDUTRACK_HTTP_ADDR": "127.0.0.1:9000", "EDUTRACK_DATA_DIR": "/srv/edutrack",
				"EDUTRACK_SHUTDOWN_TIMEOUT": "5s", "EDUTRACK_CONSISTENCY_WAIT": "250ms", "EDUTRACK_CACHE_ENTRIES": "64",
				"EDUTRACK_LOG_LEVEL": "debug", "EDUTRACK_ROLES": "read", "EDUTRACK_LEASE_TTL": "3s",
				"EDUTRACK_ESDB_URL": "kurrentdb://127.0.0.1:2113?tls=false"},
			want: config{httpAddr: "127.0.0.1:9000", dataDir: "/srv/edutrack", shutdownTimeout: 5 * time.Second,
				consistencyWait: 250 * time.Millisecond, cacheEntries: 64, logLevel: slog.LevelDebug, roles: roles{read: true}, xapiHomePage: "https://edutrack.invalid",
				leaseTTL: 3 * time.Second, esdbURL: "kurrentdb://127.0.0.1:2113?tls=false"},
		},
		{
			name: "lets flags override the environment",
			env:  map[string]string{"EDUTRACK_HTTP_ADDR": "127.0.0.1:9000", "EDUTRACK_DATA_DIR": "/srv/edutrack"},
			args: []string{"-http-addr", ":7000", "-data-dir", "/tmp/x", "-shutdown-timeout", "1m", "-consistency-wait", "1s",
				"-cache-entries", "10", "-log-level", "warn", "-roles", "write,project", "-lease-ttl", "1m"},
			want: config{httpAddr: ":7000", dataDir: "/tmp/x", shutdownTimeout: time.Minute, consistencyWait: time.Second,
				cacheEntries: 10, logLevel: slog.LevelWarn, roles: roles{write: true, project: true}, xapiHomePage: "https://edutrack.invalid",
				leaseTTL: time.Minute},
		},
		{
			name: "reports every invalid setting at once",
			env: map[string]string{"EDUTRACK_HTTP_ADDR": "nohost", "EDUTRACK_SHUTDOWN_TIMEOUT": "-1s", "EDUTRACK_LOG_LEVEL": "loud",
				"EDUTRACK_CONSISTENCY_WAIT": "0s", "EDUTRACK_CACHE_ENTRIES": "many", "EDUTRACK_ROLES": "write,cook",
				"EDUTRACK_LEASE_TTL": "10ms", "EDUTRACK_ESDB_URL": "http://kurrentdb:2113"},
			args: []string{"-data-dir", " "},
			wantErr: []string{"EDUTRACK_HTTP_ADDR", "EDUTRACK_DATA_DIR", "EDUTRACK_SHUTDOWN_TIMEOUT", "EDUTRACK_LOG_LEVEL",
				"EDUTRACK_CONSISTENCY_WAIT", "EDUTRACK_CACHE_ENTRIES", "EDUTRACK_ROLES", "EDUTRACK_LEASE_TTL", "EDUTRACK_ESDB_URL"},
		},
		{
			name:    "refuses a negative cache size given as a flag",
			args:    []string{"-cache-entries", "-5"},
			wantErr: []string{"EDUTRACK_CACHE_ENTRIES"},
		},
		{
			name:    "refuses a shutdown timeout that is not a duration",
			env:     map[string]string{"EDUTRACK_SHUTDOWN_TIMEOUT": "20"},
			wantErr: []string{"EDUTRACK_SHUTDOWN_TIMEOUT"},
		},
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			got, err := loadConfig(tc.args, func(k string) string { return tc.env[k] }, &bytes.Buffer{})
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("loadConfig = %+v, want an error", got)
				}
				for _, part := range tc.wantErr {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q does not name %s", err, part)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(config{}, roles{})); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}
