package reactors_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/reactors"
	"github.com/edutrack/edutrack/reactors/email"
)

func TestOperatorsListCancelAndRetryJobs(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, engine string) {
		ctx := context.Background()
		// No workers: the jobs stay available for the operator.
		f := newFixture(t, engine, nil)
		var head uint64
		for _, id := range []string{"ada", "bob", "cy"} {
			head = f.append(learner.StreamPrefix+id, learner.Enrolled{LearnerID: id, CourseID: "go", At: time.Now()}).Position
		}
		r := f.reactor("a", email.OnEnrolled)
		f.run(r.Run)
		eventually(t, "the reactor reached the head", func() bool { pos, _ := r.Checkpoint(ctx); return pos == head })

		jobs, err := f.queue.List(ctx, reactors.JobFilter{Kind: email.EnrollmentArgs{}.Kind()})
		if err != nil || len(jobs) != 3 {
			t.Fatalf("List = %d jobs, %v; want 3", len(jobs), err)
		}
		if jobs[0].ID < jobs[2].ID || jobs[0].State != "available" || len(jobs[0].Args) == 0 {
			t.Errorf("List: want the newest first, available, with their args: %+v", jobs)
		}
		if jobs, err := f.queue.List(ctx, reactors.JobFilter{Limit: 2}); err != nil || len(jobs) != 2 {
			t.Errorf("List with limit 2 = %d jobs, %v", len(jobs), err)
		}
		if jobs, err := f.queue.List(ctx, reactors.JobFilter{Kind: "other"}); err != nil || len(jobs) != 0 {
			t.Errorf("List of another kind = %d jobs, %v; want none", len(jobs), err)
		}

		cancelled, err := f.queue.Cancel(ctx, jobs[1].ID)
		if err != nil || cancelled.State != "cancelled" || cancelled.FinalizedAt == nil {
			t.Fatalf("Cancel = %+v, %v; want the job cancelled", cancelled, err)
		}
		if got, err := f.queue.List(ctx, reactors.JobFilter{State: "cancelled"}); err != nil || len(got) != 1 || got[0].ID != jobs[1].ID {
			t.Errorf("List of the cancelled = %+v, %v; want the one cancelled", got, err)
		}
		retried, err := f.queue.Retry(ctx, jobs[1].ID)
		if err != nil || retried.State != "available" {
			t.Errorf("Retry = %+v, %v; want the job available again", retried, err)
		}

		for name, call := range map[string]func() (reactors.Job, error){
			"Retry":  func() (reactors.Job, error) { return f.queue.Retry(ctx, 1<<40) },
			"Cancel": func() (reactors.Job, error) { return f.queue.Cancel(ctx, 1<<40) },
		} {
			if _, err := call(); !errors.Is(err, reactors.ErrJobNotFound) {
				t.Errorf("%s of a job that does not exist: %v; want ErrJobNotFound", name, err)
			}
		}
		for _, bad := range []reactors.JobFilter{{State: "lost"}, {Limit: -1}, {Limit: reactors.MaxJobs + 1}} {
			var de *domain.Error
			if _, err := f.queue.List(ctx, bad); !errors.As(err, &de) || de.Kind != domain.Invalid {
				t.Errorf("List(%+v): %v; want an Invalid error", bad, err)
			}
		}
	})
}
