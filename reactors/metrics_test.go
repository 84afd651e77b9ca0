package reactors_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/riverqueue/river"

	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/internal/testsmtp"
	"github.com/edutrack/edutrack/reactors"
	"github.com/edutrack/edutrack/reactors/email"
)

// metric is the value of the sample of name whose labels include labels: a gauge's or a
// counter's value, a histogram's count; -1 when there is none.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				return float64(m.GetHistogram().GetSampleCount())
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			default:
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func TestTheQueueReportsItsJobsBacklogLatencyAndFailures(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, engine string) {
		ctx := context.Background()
		srv := testsmtp.Start(t, testsmtp.Options{})
		srv.Down()
		f := newFixture(t, engine, nil)
		// Metrics come from a process with its own registry: one that works, beside the
		// fixture's queue, which only inserts.
		reg := prometheus.NewRegistry()
		opts := reactors.QueueOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PollInterval: 20 * time.Millisecond,
			Registerer: reg, Workers: river.NewWorkers(), Queues: map[string]int{email.Queue: 2}}
		river.AddWorker(opts.Workers, f.emailWorker(srv))
		worker := f.open(opts)

		f.append(course.StreamPrefix+"go", course.Created{CourseID: "go", Title: "Go", InstructorID: "grace", At: time.Now()})
		f.enroll("ada", "Ada", "ada@school.example", "go")
		head := f.enroll("bob", "Bob", "bob@school.example", "go")
		r := f.reactor("a", email.OnEnrolled)
		f.run(r.Run)
		eventually(t, "the reactor reached the head", func() bool { pos, _ := r.Checkpoint(ctx); return pos == head })
		// No worker yet: the jobs wait.
		time.Sleep(50 * time.Millisecond)
		b, err := worker.Backlog(ctx)
		if err != nil || b.Available != 2 || b.OldestAvailableSeconds <= 0 {
			t.Errorf("Backlog = %+v, %v; want 2 available, waiting a while", b, err)
		}
		kind := email.EnrollmentArgs{}.Kind()
		if got := metric(t, reg, "edutrack_jobs", map[string]string{"kind": kind, "state": "available"}); got != 2 {
			t.Errorf("edutrack_jobs available = %v; want 2", got)
		}
		if got := metric(t, reg, "edutrack_job_oldest_available_seconds", nil); got <= 0 {
			t.Errorf("edutrack_job_oldest_available_seconds = %v; want the wait", got)
		}

		f.run(worker.Work)
		eventually(t, "an attempt failed", func() bool {
			return metric(t, reg, "edutrack_job_failures_total", map[string]string{"kind": kind, "outcome": "retry"}) >= 1
		})
		srv.Up()
		eventually(t, "both jobs completed", func() bool {
			return metric(t, reg, "edutrack_jobs", map[string]string{"kind": kind, "state": "completed"}) == 2
		})
		eventually(t, "both latencies were observed", func() bool {
			return metric(t, reg, "edutrack_job_latency_seconds", map[string]string{"kind": kind}) == 2
		})
		if b, err := worker.Backlog(ctx); err != nil || b != (reactors.Backlog{}) {
			t.Errorf("Backlog = %+v, %v; want none", b, err)
		}
	})
}

func TestAQueueThatDoesNotAnswerLeavesItsGaugesOutOfTheScrape(t *testing.T) {
	t.Parallel()
	f := newFixture(t, "sqlite", nil)
	reg := prometheus.NewRegistry()
	q := f.open(reactors.QueueOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg})
	if got := metric(t, reg, "edutrack_job_oldest_available_seconds", nil); got != 0 {
		t.Fatalf("edutrack_job_oldest_available_seconds = %v; want 0 with no job", got)
	}
	q.Close()
	if _, err := reg.Gather(); err != nil {
		t.Errorf("the scrape failed with the queue: %v", err)
	}
	if got := metric(t, reg, "edutrack_job_oldest_available_seconds", nil); got != -1 {
		t.Errorf("edutrack_job_oldest_available_seconds = %v; want none", got)
	}
}
