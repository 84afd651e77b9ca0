package commands_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/internal/domaintest"
)

// Two Handlers over one log stand for two processes sharing it: each has its own cache, and each
// must catch up with what the other wrote before deciding.
func TestTwoHandlersShareOneLog(t *testing.T) {
	t.Run("each_decides_on_what_the_other_wrote", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, commands.Options{})
		a, b := e.h, e.handler(e.store, commands.Options{})
		e.do(a, append(draftCourse(), addModule("go", "m1", "Intro"), publish("go"), registered("cy", "learner"))...)
		e.do(b, enroll("ada", "go")) // b caches the course with one module
		e.do(a, enroll("ada", "go")) // a no-op that makes a cache ada at her enrollment
		e.do(a, addModule("go", "m2", "Types"))

		// b must see the module a added, and a the completion b appended.
		byB := e.do(b, complete("ada", "go", "m2"))[0]
		byA := e.do(a, complete("ada", "go", "m1"))[0]
		if byB.CourseCompleted || !byA.CourseCompleted {
			t.Errorf("courseCompleted: by b %v, by a %v; want false, then true", byB.CourseCompleted, byA.CourseCompleted)
		}
		// b's cached learner must know the course is completed: completing again is a no-op.
		again := e.do(b, complete("ada", "go", "m1"))[0]
		if again.Changed || !again.CourseCompleted || again.Version != byA.Version || again.Position != byA.Position {
			t.Errorf("b completing m1 again answered %+v, want a no-op at a's version %d, position %d, course completed",
				again, byA.Version, byA.Position)
		}
		// b's cached course must know a archived it.
		e.do(a, archive("go"))
		_, err := enroll("cy", "go")(context.Background(), b, meta())
		domaintest.CheckErr(t, err, learner.ErrCourseArchived, domain.Conflict, "")

		wantLearner := []domain.Event{
			learner.Enrolled{LearnerID: "ada", CourseID: "go", At: t0},
			learner.ModuleCompleted{LearnerID: "ada", CourseID: "go", ModuleID: "m2", At: t0},
			learner.ModuleCompleted{LearnerID: "ada", CourseID: "go", ModuleID: "m1", At: t0},
			learner.CourseCompleted{LearnerID: "ada", CourseID: "go", At: t0},
		}
		recs := e.read("learner-ada")
		if diff := cmp.Diff(wantLearner, e.decode(recs)); diff != "" {
			t.Errorf("learner-ada (-want +got):\n%s", diff)
		}
		if len(recs) == len(wantLearner) {
			if byB.Version != recs[1].Version || byB.Position != recs[1].Position ||
				byA.Version != recs[3].Version || byA.Position != recs[3].Position {
				t.Errorf("answers b %+v, a %+v do not name their last events %d@%d, %d@%d", byB.Result, byA.Result,
					recs[1].Version, recs[1].Position, recs[3].Version, recs[3].Position)
			}
		}
		wantCourse := []string{course.Created{}.EventType(), course.ModuleAdded{}.EventType(), course.Published{}.EventType(),
			course.ModuleAdded{}.EventType(), course.Archived{}.EventType()}
		if diff := cmp.Diff(wantCourse, types(e.read("course-go"))); diff != "" {
			t.Errorf("course-go types (-want +got):\n%s", diff)
		}
		if recs := e.read("learner-cy"); len(recs) != 0 {
			t.Errorf("learner-cy has %d events, want none", len(recs))
		}
	})

	t.Run("keep_one_learner_consistent_under_concurrent_completions", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, commands.Options{})
		handlers := []*commands.Handler{e.h, e.handler(e.store, commands.Options{})}
		modules := withModules(e, 16)
		// Both handlers serve commands on the same stream at once; the expected version settles who
		// goes first. A command that keeps losing is answered busy, and a client sends it again.
		completeConcurrently(t, e, modules, func(i int) *commands.Handler { return handlers[i%2] }, true)
	})
}

// Many goroutines completing different modules of one learner through one Handler all succeed
// and leave one contiguous stream with exactly one CourseCompleted, at its end.
func TestConcurrentCompletions(t *testing.T) {
	e := newEnv(t, commands.Options{})
	modules := withModules(e, 16)
	completeConcurrently(t, e, modules, func(int) *commands.Handler { return e.h }, false)
}

// withModules publishes course "go" with n modules and enrolls ada in it.
func withModules(e *env, n int) []string {
	e.t.Helper()
	steps := draftCourse()
	var modules []string
	for i := range n {
		id := fmt.Sprintf("m%02d", i+1)
		modules = append(modules, id)
		steps = append(steps, addModule("go", id, "Module "+id))
	}
	e.do(e.h, append(steps, publish("go"), enroll("ada", "go"))...)
	return modules
}

func completeConcurrently(t *testing.T, e *env, modules []string, handler func(i int) *commands.Handler, retryBusy bool) {
	t.Helper()
	metas := make([]commands.Meta, len(modules))
	answers := make([]answer, len(modules))
	errs := make([]error, len(modules))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, mod := range modules {
		metas[i] = meta()
		wg.Go(func() {
			<-start
			for attempt := 0; ; attempt++ {
				answers[i], errs[i] = complete("ada", "go", mod)(context.Background(), handler(i), metas[i])
				if !retryBusy || !errors.Is(errs[i], eventstore.ErrConcurrency) || attempt == 100 {
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("complete %s: %v", modules[i], err)
		}
	}
	if t.Failed() {
		return
	}

	recs := e.read("learner-ada")
	events := e.decode(recs)
	for i, r := range recs {
		if r.Version != uint64(i+1) {
			t.Fatalf("event %d has version %d: the stream is not contiguous", i, r.Version)
		}
		if i > 0 && r.Position <= recs[i-1].Position {
			t.Errorf("version %d at position %d follows position %d", r.Version, r.Position, recs[i-1].Position)
		}
	}
	// Enrolled, one ModuleCompleted per module in some order, then CourseCompleted.
	var completedModules []string
	courseCompleted := 0
	for i, ev := range events {
		switch ev := ev.(type) {
		case learner.ModuleCompleted:
			completedModules = append(completedModules, ev.ModuleID)
		case learner.CourseCompleted:
			courseCompleted++
			if i != len(events)-1 {
				t.Errorf("CourseCompleted at version %d of %d, want it last", i+1, len(events))
			}
		case learner.Enrolled:
			if i != 0 {
				t.Errorf("Enrolled at version %d, want 1", i+1)
			}
		default:
			t.Errorf("unexpected event %T at version %d", ev, i+1)
		}
	}
	if courseCompleted != 1 {
		t.Errorf("%d CourseCompleted events, want exactly 1", courseCompleted)
	}
	if diff := cmp.Diff(modules, completedModules, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("completed modules (-want +got):\n%s", diff)
	}

	// Each answer names its command's last event; only the one that completed the course says so.
	last := map[string]eventstore.RecordedEvent{}
	for _, r := range recs {
		last[r.Metadata.CausationID] = r
	}
	saidCompleted := 0
	for i, ans := range answers {
		r, ok := last[metas[i].CommandID]
		if !ok {
			t.Errorf("no event caused by the command completing %s", modules[i])
			continue
		}
		if ans.Version != r.Version || ans.Position != r.Position || !ans.Changed {
			t.Errorf("completing %s answered %+v, its last event is version %d at %d", modules[i], ans.Result, r.Version, r.Position)
		}
		if ans.CourseCompleted {
			saidCompleted++
			if r.Version != uint64(len(recs)) {
				t.Errorf("completing %s said the course is completed, but its events end at version %d of %d", modules[i], r.Version, len(recs))
			}
		}
	}
	if saidCompleted != 1 {
		t.Errorf("%d answers said courseCompleted, want exactly 1", saidCompleted)
	}
}

func types(recs []eventstore.RecordedEvent) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Type)
	}
	return out
}

// racingStore runs race once, just before the first append through it, as if another process
// wrote then.
type racingStore struct {
	commands.Store
	once sync.Once
	race func()
}

func (s *racingStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events []eventstore.EventData) (eventstore.AppendResult, error) {
	s.once.Do(s.race)
	return s.Store.Append(ctx, stream, expected, events)
}

// A client whose command timed out at one process retries it at another while the first attempt
// is still running. The retry decided on an older state than the first attempt, so it carries
// fewer events; the log recognises it by its event ids. The retry must still answer the first
// result, and the retrying handler's cache must hold the log's state, not its own decision.
func TestRetryRacingItsFirstAttemptInAnotherProcess(t *testing.T) {
	e := newEnv(t, commands.Options{})
	a := e.h
	e.do(a, adaEnrolled()...)
	x := meta()
	var first answer
	racing := &racingStore{Store: e.store}
	racing.race = func() {
		e.do(a, complete("ada", "go", "m1"))
		var err error
		if first, err = complete("ada", "go", "m2")(context.Background(), a, x); err != nil {
			t.Errorf("first attempt: %v", err)
		}
	}
	b := e.handler(racing, commands.Options{})
	e.do(b, enroll("ada", "go")) // a no-op: b caches ada at her enrollment, and appends nothing

	retry, err := complete("ada", "go", "m2")(context.Background(), b, x)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !first.CourseCompleted {
		t.Fatalf("first attempt did not complete the course: %+v", first)
	}
	if diff := cmp.Diff(first, retry); diff != "" {
		t.Errorf("retry answer (-first +retry):\n%s", diff)
	}

	// m1 is completed: b completing it again must change nothing.
	again := e.do(b, complete("ada", "go", "m1"))[0]
	if again.Changed {
		t.Errorf("b completing m1 again appended (answer %+v): its cache missed a's completion of m1", again.Result)
	}
	want := []domain.Event{
		learner.Enrolled{LearnerID: "ada", CourseID: "go", At: t0},
		learner.ModuleCompleted{LearnerID: "ada", CourseID: "go", ModuleID: "m1", At: t0},
		learner.ModuleCompleted{LearnerID: "ada", CourseID: "go", ModuleID: "m2", At: t0},
		learner.CourseCompleted{LearnerID: "ada", CourseID: "go", At: t0},
	}
	if diff := cmp.Diff(want, e.decode(e.read("learner-ada"))); diff != "" {
		t.Errorf("learner-ada (-want +got):\n%s", diff)
	}
}
