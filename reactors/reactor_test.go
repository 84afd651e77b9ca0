package reactors_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.uber.org/goleak"

	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
	"github.com/edutrack/edutrack/internal/testpostgres"
	"github.com/edutrack/edutrack/internal/testsmtp"
	"github.com/edutrack/edutrack/reactors"
	"github.com/edutrack/edutrack/reactors/email"
	"github.com/edutrack/edutrack/reactors/email/smtpmail"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(testpostgres.Main(m)) }

// engines are the databases the queue runs on; every test runs on each, so that the contract
// is the same.
var engines = []string{"sqlite", "postgres"}

// eachEngine runs test once per engine, in parallel.
func eachEngine(t *testing.T, test func(t *testing.T, engine string)) {
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			test(t, engine)
		})
	}
}

// fixture is an event log, a job queue and, when a mail server is given, the email worker.
type fixture struct {
	t      *testing.T
	engine string
	dir    string
	dbURL  string // the queue's database on PostgreSQL
	log    *sqlitelog.Log
	queue  *reactors.Queue
}

func newFixture(t *testing.T, engine string, srv *testsmtp.Server) *fixture {
	t.Helper()
	f := &fixture{t: t, engine: engine, dir: t.TempDir()}
	var err error
	f.log, err = sqlitelog.Open(filepath.Join(f.dir, "events.db"), sqlitelog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.log.Close() })
	if engine == "postgres" {
		f.dbURL = testpostgres.NewDatabase(t)
	}
	opts := reactors.QueueOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), PollInterval: 20 * time.Millisecond}
	if srv != nil {
		opts.Workers = river.NewWorkers()
		river.AddWorker(opts.Workers, f.emailWorker(srv))
		opts.Queues = map[string]int{email.Queue: 2}
	}
	f.queue = f.open(opts)
	return f
}

// open opens another queue on the fixture's database, as another process would.
func (f *fixture) open(opts reactors.QueueOptions) *reactors.Queue {
	f.t.Helper()
	var q *reactors.Queue
	var err error
	if f.engine == "postgres" {
		q, err = reactors.OpenPostgresQueue(context.Background(), f.dbURL, opts)
	} else {
		q, err = reactors.OpenQueue(context.Background(), filepath.Join(f.dir, "jobs.db"), opts)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	// Registered after the log's cleanup, so run before it.
	f.t.Cleanup(func() { q.Close() })
	return q
}

// emailWorker sends the enrollment emails through srv, retrying within 100ms, or as backoff
// says when one is given.
func (f *fixture) emailWorker(srv *testsmtp.Server, backoff ...email.Backoff) *email.EnrollmentWorker {
	f.t.Helper()
	mailer, err := smtpmail.New(smtpmail.Config{URL: "smtp://" + srv.Addr(), From: "EduTrack <noreply@school.example>", RootCAs: srv.Roots(), Timeout: 2 * time.Second})
	if err != nil {
		f.t.Fatal(err)
	}
	public, _ := url.Parse("https://school.example/learn")
	retry := email.Backoff(reactors.ExponentialBackoff(20*time.Millisecond, 100*time.Millisecond))
	if len(backoff) > 0 {
		retry = backoff[0]
	}
	worker, err := email.NewEnrollmentWorker(f.log, mailer, public, retry)
	if err != nil {
		f.t.Fatal(err)
	}
	return worker
}

// run runs fn until the test ends, or stop is called.
func (f *fixture) run(fn func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				f.t.Error(err)
			}
		})
	}
	f.t.Cleanup(stop)
	return stop
}

func (f *fixture) reactor(owner string, triggers ...reactors.Trigger) *reactors.Reactor {
	f.t.Helper()
	r, err := reactors.NewReactor(f.log, f.queue, slog.New(slog.NewTextHandler(io.Discard, nil)),
		reactors.ReactorOptions{Owner: owner, LeaseTTL: 3 * time.Second, RetryDelay: 10 * time.Millisecond}, triggers...)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) append(stream string, events ...any) eventstore.AppendResult {
	f.t.Helper()
	var data []eventstore.EventData
	for _, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			f.t.Fatal(err)
		}
		data = append(data, eventstore.EventData{ID: uuid.New(), Type: e.(interface{ EventType() string }).EventType(), Data: b})
	}
	res, err := f.log.Append(context.Background(), stream, eventstore.Any, data)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// enroll registers a learner and enrolls them in a course that exists already; it returns the
// position of the enrollment.
func (f *fixture) enroll(id, name, addr, courseID string) uint64 {
	f.t.Helper()
	now := time.Now()
	f.append(user.StreamPrefix+id, user.Registered{UserID: id, Name: name, Email: addr, Role: "learner", At: now})
	return f.append(learner.StreamPrefix+id, learner.Enrolled{LearnerID: id, CourseID: courseID, At: now}).Position
}

func (f *fixture) jobs() []*rivertype.JobRow {
	f.t.Helper()
	jobs, err := f.queue.Jobs(context.Background(), email.EnrollmentArgs{}.Kind())
	if err != nil {
		f.t.Fatal(err)
	}
	return jobs
}

// eventually fails the test unless cond holds within 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still not so after 10s: %s", what)
		}
	}
}

func TestEnrollingSendsOneEmail(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, engine string) {
		srv := testsmtp.Start(t, testsmtp.Options{StartTLS: true})
		f := newFixture(t, engine, srv)
		f.run(f.queue.Work)
		f.run(f.reactor("a", email.OnEnrolled).Run)
		f.append(course.StreamPrefix+"go", course.Created{CourseID: "go", Title: "Go & You", InstructorID: "grace", At: time.Now()})
		f.enroll("ada", "Ada Lovelace", "ada@school.example", "go")

		msgs := srv.WaitMessages(1, 10*time.Second)
		events, err := f.log.ReadStream(context.Background(), learner.StreamPrefix+"ada", 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		got := testsmtp.Parse(t, msgs[0].Data)
		for field, want := range map[string]string{
			"Message-Id": "<enrollment_email." + events[0].ID.String() + "@school.example>",
			"Subject":    "You are enrolled in Go & You",
			"To":         `"Ada Lovelace" <ada@school.example>`,
		} {
			if got[field] != want {
				t.Errorf("%s: %q; want %q", field, got[field], want)
			}
		}
		for _, part := range []string{"text/plain", "text/html"} {
			for _, want := range []string{"Ada Lovelace", "https://school.example/learn/courses/go"} {
				if !strings.Contains(got[part], want) {
					t.Errorf("%s part lacks %q:\n%s", part, want, got[part])
				}
			}
		}
		if !strings.Contains(got["text/plain"], `"Go & You"`) || !strings.Contains(got["text/html"], "Go &amp; You") {
			t.Errorf("the bodies lack the course title, escaped for each:\n%s\n%s", got["text/plain"], got["text/html"])
		}
		eventually(t, "the job completed", func() bool {
			jobs := f.jobs()
			return len(jobs) == 1 && jobs[0].State == rivertype.JobStateCompleted
		})
		if n := len(srv.Messages()); n != 1 {
			t.Errorf("%d emails; want 1", n)
		}
		// Its work is done: running it again would send a second email.
		if _, err := f.queue.Retry(context.Background(), f.jobs()[0].ID); !errors.Is(err, reactors.ErrJobCompleted) {
			t.Errorf("Retry of the completed job: %v; want ErrJobCompleted", err)
		}
	})
}

func TestTheReactorInsertsOneJobPerEvent(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, engine string) {
		t.Run("when a batch is rolled back", func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, engine, nil)
			var failed atomic.Bool
			// The second enrollment fails once after the first's job was inserted in the same
			// transaction: like a crash before the commit, it must leave no job behind.
			flaky := func(e eventstore.RecordedEvent) (river.JobArgs, error) {
				args, err := email.OnEnrolled(e)
				if a, ok := args.(email.EnrollmentArgs); ok && a.LearnerID == "bob" && failed.CompareAndSwap(false, true) {
					return nil, errors.New("crash")
				}
				return args, err
			}
			f.enroll("ada", "Ada", "ada@school.example", "go")
			f.enroll("bob", "Bob", "bob@school.example", "go")
			head := f.append(learner.StreamPrefix+"cy", learner.Enrolled{LearnerID: "cy", CourseID: "go", At: time.Now()}).Position
			r := f.reactor("a", flaky)
			f.run(r.Run)
			eventually(t, "the reactor reached the head", func() bool { pos, _ := r.Checkpoint(context.Background()); return pos == head })
			assertOneJobEach(t, f, "ada", "bob", "cy")
			if !failed.Load() {
				t.Fatal("the batch never failed")
			}
		})
		t.Run("when the checkpoint falls back", func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, engine, nil)
			f.enroll("ada", "Ada", "ada@school.example", "go")
			head := f.append(learner.StreamPrefix+"bob", learner.Enrolled{LearnerID: "bob", CourseID: "go", At: time.Now()}).Position
			r := f.reactor("a", email.OnEnrolled)
			stop := f.run(r.Run)
			eventually(t, "the reactor reached the head", func() bool { pos, _ := r.Checkpoint(context.Background()); return pos == head })
			stop()
			// As if the jobs' transaction had committed and the checkpoint's had not: the unique
			// index on the event id is the second guard.
			if err := f.queue.SetCheckpoint(context.Background(), "reactor", 0); err != nil {
				t.Fatal(err)
			}
			r = f.reactor("b", email.OnEnrolled)
			f.run(r.Run)
			eventually(t, "the reactor reached the head again", func() bool { pos, _ := r.Checkpoint(context.Background()); return pos == head })
			assertOneJobEach(t, f, "ada", "bob")
		})
	})
}

func TestTwoReactorsStartingTogetherInsertEachJobOnce(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine, nil)
		var learners []string
		var head uint64
		for i := range 20 {
			id := fmt.Sprintf("l%d", i)
			learners = append(learners, id)
			head = f.append(learner.StreamPrefix+id, learner.Enrolled{LearnerID: id, CourseID: "go", At: time.Now()}).Position
		}
		// Both race to create the lease; one holds it, the other waits.
		a, b := f.reactor("a", email.OnEnrolled), f.reactor("b", email.OnEnrolled)
		f.run(a.Run)
		f.run(b.Run)
		eventually(t, "the reactors reached the head", func() bool { pos, _ := a.Checkpoint(context.Background()); return pos == head })
		assertOneJobEach(t, f, learners...)
	})
}

func assertOneJobEach(t *testing.T, f *fixture, learners ...string) {
	t.Helper()
	count := map[string]int{}
	for _, j := range f.jobs() {
		var args email.EnrollmentArgs
		if err := json.Unmarshal(j.EncodedArgs, &args); err != nil {
			t.Fatal(err)
		}
		count[args.LearnerID]++
	}
	for _, id := range learners {
		if count[id] != 1 {
			t.Errorf("%d jobs for %s; want 1 (all: %v)", count[id], id, count)
		}
	}
	if len(count) != len(learners) {
		t.Errorf("jobs for %v; want one for each of %v", count, learners)
	}
}

func TestAReactorThatLostItsLeaseCommitsNothing(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, engine string) {
		f := newFixture(t, engine, nil)
		head := f.append(learner.StreamPrefix+"ada", learner.Enrolled{LearnerID: "ada", CourseID: "go", At: time.Now()}).Position
		r := f.reactor("a", email.OnEnrolled)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		eventually(t, "the reactor reached the head", func() bool { pos, _ := r.Checkpoint(context.Background()); return pos == head })
		if err := f.queue.TakeLease(context.Background(), "reactor", "b"); err != nil {
			t.Fatal(err)
		}
		f.append(learner.StreamPrefix+"bob", learner.Enrolled{LearnerID: "bob", CourseID: "go", At: time.Now()})
		select {
		case err := <-done:
			if !errors.Is(err, reactors.ErrLeaseLost) {
				t.Fatalf("Run returned %v; want ErrLeaseLost", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the reactor kept running after its lease was taken")
		}
		if pos, _ := r.Checkpoint(context.Background()); pos != head {
			t.Errorf("checkpoint %d; want %d, where the lease was lost", pos, head)
		}
		assertOneJobEach(t, f, "ada")
	})
}

func TestAFailedEmailIsRetriedUntilTheServerAnswers(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, engine string) {
		srv := testsmtp.Start(t, testsmtp.Options{})
		srv.Down()
		f := newFixture(t, engine, srv)
		f.run(f.queue.Work)
		f.run(f.reactor("a", email.OnEnrolled).Run)
		f.append(course.StreamPrefix+"go", course.Created{CourseID: "go", Title: "Go", InstructorID: "grace", At: time.Now()})
		f.enroll("ada", "Ada", "ada@school.example", "go")
		eventually(t, "the job failed twice", func() bool { jobs := f.jobs(); return len(jobs) == 1 && len(jobs[0].Errors) >= 2 })
		srv.Up()
		srv.WaitMessages(1, 10*time.Second)
		eventually(t, "the job completed", func() bool { jobs := f.jobs(); return len(jobs) == 1 && jobs[0].State == rivertype.JobStateCompleted })
	})
}

func TestAnEmailThatExhaustsItsAttemptsIsDiscardedAndCanBeRetried(t *testing.T) {
	t.Parallel()
	eachEngine(t, func(t *testing.T, engine string) {
		srv := testsmtp.Start(t, testsmtp.Options{})
		srv.Down()
		f := newFixture(t, engine, srv)
		f.run(f.queue.Work)
		f.run(f.reactor("a", email.OnEnrolled).Run)
		f.append(course.StreamPrefix+"go", course.Created{CourseID: "go", Title: "Go", InstructorID: "grace", At: time.Now()})
		f.enroll("ada", "Ada", "ada@school.example", "go")
		var job *rivertype.JobRow
		eventually(t, "the job was discarded", func() bool {
			jobs := f.jobs()
			if len(jobs) == 1 && jobs[0].State == rivertype.JobStateDiscarded {
				job = jobs[0]
			}
			return job != nil
		})
		if job.Attempt != email.MaxAttempts || len(job.Errors) != email.MaxAttempts {
			t.Errorf("discarded after %d attempts with %d errors; want %d", job.Attempt, len(job.Errors), email.MaxAttempts)
		}
		srv.Up()
		if _, err := f.queue.Retry(context.Background(), job.ID); err != nil {
			t.Fatal(err)
		}
		srv.WaitMessages(1, 10*time.Second)
	})
}
