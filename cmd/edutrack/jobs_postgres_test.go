package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/edutrack/edutrack/internal/testpostgres"
	"github.com/edutrack/edutrack/internal/testsmtp"
)

// jobsEnv is the settings of processes that share the job queue in the PostgreSQL database at
// pgURL and send emails through srv, with roles.
func jobsEnv(srv *testsmtp.Server, pgURL, roles string) map[string]string {
	return map[string]string{"EDUTRACK_SMTP_URL": "smtp://" + srv.Addr(), "EDUTRACK_SMTP_FROM": "EduTrack <noreply@school.example>",
		"EDUTRACK_PUBLIC_URL": "https://learn.school.example/", "EDUTRACK_POSTGRES_URL": pgURL, "EDUTRACK_ROLES": roles}
}

func TestTwoWorkProcessesOnPostgresShareTheEmailsAndSendEachOnce(t *testing.T) {
	t.Parallel()
	srv := testsmtp.Start(t, testsmtp.Options{})
	pgURL := testpostgres.NewDatabase(t)
	dir := t.TempDir()
	// buildEdutrack (projections_test.go) builds with -race when the test runs with it.
	bin, err := buildEdutrack(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// The reactor beside the event log, in this process; two work processes of their own,
	// following the log's file read-only, as on one machine.
	api := launch(t, dir, &logTracker{}, jobsEnv(srv, pgURL, "write,project,read,react"), func(string) bool { return false })
	var workers []*child
	for range 2 {
		workers = append(workers, startChild(t, bin, dir, jobsEnv(srv, pgURL, "work")))
	}
	// The server holds every email unanswered: each work process sends emailWorkers at once,
	// so more held than that means both are sending.
	srv.Hold()
	api.ok(api.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	api.ok(api.do("POST", "/v1/courses", newCourse("go")), created, 1)
	api.ok(api.do("POST", "/v1/courses/go/modules", module("m1", "Intro")), created, 1)
	api.ok(api.do("POST", "/v1/courses/go/publish", nil), ok, 1)
	const learners = 3 * emailWorkers
	want := map[string]int{}
	for i := range learners {
		id := fmt.Sprintf("l%d", i)
		api.ok(api.do("POST", "/v1/users", user(id, fmt.Sprintf("Learner %d", i), "learner")), created, 1)
		api.ok(api.do("POST", "/v1/courses/go/enrollments", enrollment(id)), created, 1)
		want[fmt.Sprintf("learner.%d@example.com", i)] = 1
	}
	for deadline := time.Now().Add(30 * time.Second); srv.Held() < 2*emailWorkers; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d emails in flight after 30s; want %d, both work processes sending", srv.Held(), 2*emailWorkers)
		}
	}
	srv.Release()
	srv.WaitMessages(learners, 30*time.Second)
	for _, w := range workers {
		w.stop()
	}
	api.stop()

	got := map[string]int{}
	for _, m := range srv.Messages() {
		for _, to := range m.To {
			got[to]++
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("emails by recipient: %v; want one each to %v", got, slices.Sorted(maps.Keys(want)))
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var jobs, completed, by int
	err = conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE state = 'completed'),
		(SELECT count(DISTINCT a) FROM river_job, unnest(attempted_by) AS a) FROM river_job`).Scan(&jobs, &completed, &by)
	if err != nil {
		t.Fatal(err)
	}
	if jobs != learners || completed != learners || by != 2 {
		t.Errorf("%d jobs, %d completed, attempted by %d processes; want %d, all completed, by 2", jobs, completed, by, learners)
	}
}

func TestPostgresSetting(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	const u = "postgres://edutrack:s3cret@db.school.example:5432/edutrack?sslmode=verify-full"
	cfg, err := loadConfig(nil, env(map[string]string{"EDUTRACK_POSTGRES_URL": u}), &strings.Builder{})
	if err != nil || cfg.postgresURL != u {
		t.Errorf("EDUTRACK_POSTGRES_URL: %q, %v; want it taken", cfg.postgresURL, err)
	}
	if cfg, err := loadConfig([]string{"--postgres-url", "postgresql://db/edutrack"}, env(nil), &strings.Builder{}); err != nil || cfg.postgresURL != "postgresql://db/edutrack" {
		t.Errorf("--postgres-url: %q, %v; want it taken", cfg.postgresURL, err)
	}
	if cfg, err := loadConfig(nil, env(nil), &strings.Builder{}); err != nil || cfg.postgresURL != "" {
		t.Errorf("without it: %q, %v; want jobs.db", cfg.postgresURL, err)
	}
	_, err = loadConfig(nil, env(map[string]string{"EDUTRACK_POSTGRES_URL": "mysql://u:s3cret@db/edutrack"}), &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "EDUTRACK_POSTGRES_URL") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("another scheme: %v; want it refused, naming the setting and not the password", err)
	}
	var help bytes.Buffer
	if err := run(t.Context(), []string{"serve", "-h"}, env(map[string]string{"EDUTRACK_POSTGRES_URL": u}), &help, io.Discard, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(help.String(), "--postgres-url") || strings.Contains(help.String(), "s3cret") {
		t.Errorf("serve -h shows no --postgres-url, or its password:\n%s", help.String())
	}
}
