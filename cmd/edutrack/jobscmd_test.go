package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/testpostgres"
	"github.com/edutrack/edutrack/internal/testsmtp"
	"github.com/edutrack/edutrack/reactors"
)

// jobsCLI runs `edutrack jobs args...` against the admin API at base, as an operator on the
// server's machine.
func jobsCLI(t *testing.T, base string, args ...string) (stdout string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	env := envOf(map[string]string{"EDUTRACK_ADMIN_URL": base, "EDUTRACK_JWT_KEY": testKey})
	err = run(ctx, append([]string{"jobs"}, args...), env, &out, &errOut, nil)
	return out.String(), err
}

func TestOperatorsCancelAndRetryAJobThroughTheCLI(t *testing.T) {
	t.Parallel()
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			srv := testsmtp.Start(t, testsmtp.Options{})
			srv.Down()
			pgURL := ""
			if engine == "postgres" {
				pgURL = testpostgres.NewDatabase(t)
			}
			env := jobsEnv(srv, pgURL, "write,project,read,react,work")
			if pgURL == "" {
				delete(env, "EDUTRACK_POSTGRES_URL")
			}
			// The SMTP server is down: the email fails, which is normal, not an error of EduTrack's.
			s := launch(t, t.TempDir(), &logTracker{}, env, func(string) bool { return false })
			s.ok(s.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
			s.ok(s.do("POST", "/v1/users", user("ada", "Ada Lovelace", "learner")), created, 1)
			s.ok(s.do("POST", "/v1/courses", newCourse("go")), created, 1)
			s.ok(s.do("POST", "/v1/courses/go/modules", module("m1", "Intro")), created, 1)
			s.ok(s.do("POST", "/v1/courses/go/publish", nil), ok, 1)
			s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("ada")), created, 1)

			var job reactors.Job
			for deadline := time.Now().Add(20 * time.Second); job.State != "retryable"; time.Sleep(50 * time.Millisecond) {
				out, err := jobsCLI(t, s.base, "list", "--json", "--kind", "enrollment_email")
				var jobs []reactors.Job
				if err != nil || json.Unmarshal([]byte(out), &jobs) != nil {
					t.Fatalf("jobs list --json: %v\n%s", err, out)
				}
				if len(jobs) == 1 {
					job = jobs[0]
				}
				if time.Now().After(deadline) {
					t.Fatalf("no failed email job after 20s: %+v", jobs)
				}
			}
			if len(job.Errors) == 0 || job.Errors[0].Error == "" {
				t.Errorf("the failed job shows no error: %+v", job)
			}
			id := strconv.FormatInt(job.ID, 10)
			if out, err := jobsCLI(t, s.base, "cancel", id); err != nil || !strings.Contains(out, "is cancelled") {
				t.Fatalf("jobs cancel %s: %v\n%s", id, err, out)
			}
			out, err := jobsCLI(t, s.base, "list", "--state", "cancelled")
			if header, rows := tableRows(t, out); err != nil || header != "ID KIND STATE ATTEMPTS CREATED LAST ERROR" ||
				len(rows) != 1 || rows[0][0] != id || rows[0][2] != "cancelled" {
				t.Fatalf("jobs list --state cancelled: %v\n%s", err, out)
			}

			// Nothing waits for a worker, and /readyz says so.
			var ready struct {
				Jobs *struct {
					Available              *int     `json:"available"`
					OldestAvailableSeconds *float64 `json:"oldestAvailableSeconds"`
				} `json:"jobs"`
			}
			if r := s.do("GET", "/readyz", nil); r.status != http.StatusOK || json.Unmarshal(r.body, &ready) != nil || ready.Jobs == nil ||
				ready.Jobs.Available == nil || *ready.Jobs.Available != 0 || ready.Jobs.OldestAvailableSeconds == nil {
				t.Errorf("/readyz: %d %s; want the jobs' backlog, none available", r.status, r.body)
			}

			srv.Up()
			if out, err := jobsCLI(t, s.base, "retry", id); err != nil || !strings.Contains(out, "is available") {
				t.Fatalf("jobs retry %s: %v\n%s", id, err, out)
			}
			srv.WaitMessages(1, 20*time.Second)
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				out, _ := jobsCLI(t, s.base, "list", "--state", "completed")
				if _, rows := tableRows(t, out); len(rows) == 1 && rows[0][0] == id {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the retried job did not complete within 20s:\n%s", out)
				}
			}
			if _, err := jobsCLI(t, s.base, "retry", id); err == nil || !strings.Contains(err.Error(), "409") {
				t.Errorf("jobs retry of the completed job: %v; want a 409", err)
			}
			if _, err := jobsCLI(t, s.base, "cancel", "999999"); err == nil || !strings.Contains(err.Error(), reactors.ErrJobNotFound.Error()) {
				t.Errorf("jobs cancel of a job that does not exist: %v; want it named", err)
			}
			if _, err := jobsCLI(t, s.base, "list", "--state", "lost"); err == nil || !strings.Contains(err.Error(), "(state)") {
				t.Errorf("jobs list --state lost: %v; want the state refused", err)
			}
			s.stop()
		})
	}
}

func TestTheJobsAdminAPIIsForAdminsOnly(t *testing.T) {
	t.Parallel()
	s := start(t, t.TempDir(), &logTracker{})
	for _, tc := range []struct {
		method, path string
	}{{"GET", "/v1/admin/jobs"}, {"POST", "/v1/admin/jobs/1/retry"}, {"POST", "/v1/admin/jobs/1/cancel"}} {
		for _, role := range []domain.Role{domain.Learner, domain.Instructor} {
			r := s.do(tc.method, tc.path, nil, "Authorization", bearer("someone", role))
			// As the projections' admin API answers the same caller.
			p := s.do("GET", "/v1/admin/projections", nil, "Authorization", bearer("someone", role))
			if r.status != http.StatusForbidden || p.status != r.status || !strings.HasPrefix(r.contentType, "application/problem+json") {
				t.Errorf("%s %s as %s: %d %s (projections: %d); want 403 problem+json", tc.method, tc.path, role, r.status, r.contentType, p.status)
			}
		}
		if r := s.do(tc.method, tc.path, nil, "Authorization", "Bearer forged"); r.status != http.StatusUnauthorized {
			t.Errorf("%s %s with a forged token: %d; want 401", tc.method, tc.path, r.status)
		}
	}
	if r := s.do("GET", "/v1/admin/jobs", nil); r.status != http.StatusOK {
		t.Errorf("GET /v1/admin/jobs as an admin: %d %s", r.status, r.body)
	}
	s.stop()
}
