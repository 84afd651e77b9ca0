package reactors_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/internal/testsmtp"
	"github.com/edutrack/edutrack/reactors"
	"github.com/edutrack/edutrack/reactors/email"
)

// The mail server is down for 30 s while learners enroll: every email is delivered once it is
// back, and none twice. The outage is as long as the jobs' backoff makes it survivable: each job
// fails a few times (waits of 0.5 to 8 s, far fewer than email.MaxAttempts), none is discarded.
// Slow by design: 30 s of outage, run on both engines at once.
func TestEveryEmailIsDeliveredOnceAfterAnSMTPOutage(t *testing.T) {
	t.Parallel()
	const learners, outage = 20, 30 * time.Second
	eachEngine(t, func(t *testing.T, engine string) {
		srv := testsmtp.Start(t, testsmtp.Options{})
		srv.Down()
		down := time.Now()
		f := newFixture(t, engine, nil)
		workers := river.NewWorkers()
		river.AddWorker(workers, f.emailWorker(srv, email.Backoff(reactors.ExponentialBackoff(time.Second, 8*time.Second))))
		// A working process of its own, beside the reactor's.
		q := f.open(reactors.QueueOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PollInterval: 20 * time.Millisecond,
			Workers: workers, Queues: map[string]int{email.Queue: 2}})
		f.run(q.Work)
		f.run(f.reactor("a", email.OnEnrolled).Run)
		f.append(course.StreamPrefix+"go", course.Created{CourseID: "go", Title: "Go", InstructorID: "grace", At: time.Now()})
		for i := range learners {
			id := fmt.Sprintf("learner-%d", i)
			f.enroll(id, "Learner", id+"@school.example", "go")
		}
		eventually(t, "every job failed at least once", func() bool {
			jobs := f.jobs()
			for _, j := range jobs {
				if len(j.Errors) == 0 {
					return false
				}
			}
			return len(jobs) == learners
		})
		time.Sleep(time.Until(down.Add(outage)))
		for _, j := range f.jobs() {
			if j.State == rivertype.JobStateDiscarded || j.State == rivertype.JobStateCompleted {
				t.Fatalf("job %d is %s after the outage; want it waiting to be retried", j.ID, j.State)
			}
		}
		srv.Up()
		srv.WaitMessages(learners, 30*time.Second)
		eventually(t, "every job completed", func() bool {
			for _, j := range f.jobs() {
				if j.State != rivertype.JobStateCompleted {
					return false
				}
			}
			return true
		})
		// A moment for a duplicate to arrive, had any job been sent twice.
		time.Sleep(500 * time.Millisecond)
		got := srv.Messages()
		if len(got) != learners {
			t.Errorf("%d messages after the outage; want %d, one per learner", len(got), learners)
		}
		seen := map[string]bool{}
		for _, m := range got {
			msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
			if err != nil {
				t.Fatal(err)
			}
			id := msg.Header.Get("Message-Id")
			if seen[id] || len(m.To) != 1 || seen[m.To[0]] {
				t.Errorf("message %s to %v is a second copy", id, m.To)
			}
			seen[id] = true
			if len(m.To) == 1 {
				seen[m.To[0]] = true
			}
		}
	})
}
