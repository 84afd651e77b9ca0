package learner_test

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/internal/domaintest"
)

const (
	id       = "u-ada"
	courseID = "c-go"
)

var (
	t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Hour)
	t2 = t0.Add(2 * time.Hour)
	t3 = t0.Add(3 * time.Hour)
)

// Courses and users are inputs to the learner's commands; they are built from their own events.

func newUser(userID string, role domain.Role) *user.User {
	u := user.New(userID)
	u.Apply(user.Registered{UserID: userID, Name: "Someone", Email: userID + "@example.com", Role: role, At: t0})
	return u
}

type courseState int

const (
	draft courseState = iota
	published
	archived
)

func newCourse(cid string, st courseState, moduleIDs ...string) *course.Course {
	c := course.New(cid)
	c.Apply(course.Created{CourseID: cid, Title: "Go", Category: "programming", Level: course.LevelBeginner, InstructorID: "u-teacher", At: t0})
	for _, m := range moduleIDs {
		c.Apply(course.ModuleAdded{CourseID: cid, ModuleID: m, Title: m, At: t0})
	}
	if st >= published {
		c.Apply(course.Published{CourseID: cid, At: t0})
	}
	if st >= archived {
		c.Apply(course.Archived{CourseID: cid, At: t0})
	}
	return c
}

var (
	ada        = newUser(id, domain.Learner)
	twoModules = newCourse(courseID, published, "intro", "types")
)

func enrolled(at time.Time) learner.Enrolled {
	return learner.Enrolled{LearnerID: id, CourseID: courseID, At: at}
}

func resumed(at time.Time) learner.Enrolled {
	return learner.Enrolled{LearnerID: id, CourseID: courseID, Resumed: true, At: at}
}

func withdrawn(at time.Time) learner.Withdrawn {
	return learner.Withdrawn{LearnerID: id, CourseID: courseID, At: at}
}

func moduleCompleted(moduleID string, at time.Time) learner.ModuleCompleted {
	return learner.ModuleCompleted{LearnerID: id, CourseID: courseID, ModuleID: moduleID, At: at}
}

func courseCompleted(at time.Time) learner.CourseCompleted {
	return learner.CourseCompleted{LearnerID: id, CourseID: courseID, At: at}
}

// attempt is a learner under test and what its CompleteModule reported beside the error.
type attempt struct {
	*learner.Learner
	completed bool
}

// testCase is one given / when / then of a learner; domaintest.Run runs a table of them.
type testCase = domaintest.Case[*attempt]

// run runs cases. A case without a Check checks reportsCompleted(false): CompleteModule reports
// the course completed only where a case says so, and the other commands report nothing.
func run(t *testing.T, cases []testCase) {
	t.Helper()
	cases = slices.Clone(cases)
	for i := range cases {
		if cases[i].Check == nil {
			cases[i].Check = reportsCompleted(false)
		}
	}
	newAttempt := func() *attempt { return &attempt{Learner: learner.New(id)} }
	domaintest.Run(t, newAttempt, func(a *attempt) snapshot { return state(a.Learner) }, cases)
}

// reportsCompleted checks what CompleteModule reported: whether the enrollment is completed.
func reportsCompleted(want bool) func(*testing.T, *attempt) {
	return func(t *testing.T, a *attempt) {
		t.Helper()
		if a.completed != want {
			t.Errorf("completed = %v, want %v", a.completed, want)
		}
	}
}

type snapshot struct {
	ID          string
	Enrollments []learner.Enrollment
}

func state(l *learner.Learner) snapshot {
	return snapshot{ID: l.ID(), Enrollments: l.Enrollments()}
}

func enroll(person *user.User, c *course.Course, at time.Time) func(*attempt) error {
	return func(a *attempt) error { return a.Enroll(person, c, at) }
}

func TestEnroll(t *testing.T) {
	archivedCourse := newCourse(courseID, archived, "intro", "types")
	run(t, []testCase{
		{
			Name: "enrolls in a published course",
			When: enroll(ada, twoModules, t0),
			Then: []domain.Event{enrolled(t0)},
		},
		{
			Name:  "records nothing when already enrolled",
			Given: []domain.Event{enrolled(t0)},
			When:  enroll(ada, twoModules, t1),
		},
		{
			Name:  "records nothing when the course is completed",
			Given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1), moduleCompleted("types", t1), courseCompleted(t1)},
			When:  enroll(ada, twoModules, t2),
		},
		{
			Name:  "records nothing when already enrolled in an archived course",
			Given: []domain.Event{enrolled(t0)},
			When:  enroll(ada, archivedCourse, t1),
		},
		{
			Name:  "records nothing when the archived course is completed",
			Given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1), moduleCompleted("types", t1), courseCompleted(t1)},
			When:  enroll(ada, archivedCourse, t2),
		},
		{
			Name:  "resumes after a withdrawal",
			Given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1), withdrawn(t2)},
			When:  enroll(ada, twoModules, t3),
			Then:  []domain.Event{resumed(t3)},
		},
		{
			Name: "rejects a draft course",
			When: enroll(ada, newCourse(courseID, draft, "intro"), t0),
			Err:  learner.ErrCourseNotPublished, Kind: domain.Conflict,
		},
		{
			Name: "rejects an archived course",
			When: enroll(ada, archivedCourse, t0),
			Err:  learner.ErrCourseArchived, Kind: domain.Conflict,
		},
		{
			Name:  "rejects resuming in an archived course",
			Given: []domain.Event{enrolled(t0), withdrawn(t1)},
			When:  enroll(ada, archivedCourse, t2),
			Err:   learner.ErrCourseArchived, Kind: domain.Conflict,
		},
		{
			Name: "rejects a course that does not exist",
			When: enroll(ada, course.New(courseID), t0),
			Err:  learner.ErrCourseNotFound, Kind: domain.NotFound, Field: "courseId",
		},
		{
			Name: "rejects a missing course",
			When: enroll(ada, nil, t0),
			Err:  learner.ErrCourseNotFound, Kind: domain.NotFound, Field: "courseId",
		},
		{
			Name: "rejects a user who is not registered",
			When: enroll(user.New(id), twoModules, t0),
			Err:  learner.ErrLearnerNotFound, Kind: domain.NotFound, Field: "learnerId",
		},
		{
			Name: "rejects a missing user",
			When: enroll(nil, twoModules, t0),
			Err:  learner.ErrLearnerNotFound, Kind: domain.NotFound, Field: "learnerId",
		},
		{
			Name: "rejects another learner",
			When: enroll(newUser("u-bob", domain.Learner), twoModules, t0),
			Err:  learner.ErrLearnerNotFound, Kind: domain.NotFound, Field: "learnerId",
		},
		{
			Name: "rejects an instructor",
			When: enroll(newUser(id, domain.Instructor), twoModules, t0),
			Err:  learner.ErrNotALearner, Kind: domain.Conflict, Field: "learnerId",
		},
	})
}

func TestEnrollAfterWithdrawing(t *testing.T) {
	t.Run("resumes the earlier progress", func(t *testing.T) {
		l := learner.New(id)
		for _, e := range []domain.Event{enrolled(t0), moduleCompleted("intro", t1), withdrawn(t2)} {
			l.Apply(e)
		}
		if err := l.Enroll(ada, twoModules, t3); err != nil {
			t.Fatal(err)
		}
		got, _ := l.Enrollment(courseID)
		want := learner.Enrollment{
			CourseID: courseID, Status: learner.StatusActive, CompletedModules: []string{"intro"},
			EnrolledAt: t0, LastActivityAt: t3,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("enrollment (-want +got):\n%s", diff)
		}
		completed, err := l.CompleteModule(twoModules, "types", t3)
		if err != nil || !completed {
			t.Fatalf("CompleteModule = %v, %v; want the course completed", completed, err)
		}
		wantChanges := []domain.Event{resumed(t3), moduleCompleted("types", t3), courseCompleted(t3)}
		if diff := cmp.Diff(wantChanges, l.Changes()); diff != "" {
			t.Errorf("changes (-want +got):\n%s", diff)
		}
	})
}

func TestWithdraw(t *testing.T) {
	withdraw := func(cid string) func(*attempt) error {
		return func(a *attempt) error { return a.Withdraw(cid, t2) }
	}
	run(t, []testCase{
		{
			Name:  "withdraws an active enrollment",
			Given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1)},
			When:  withdraw(courseID),
			Then:  []domain.Event{withdrawn(t2)},
		},
		{
			Name:  "records nothing when already withdrawn",
			Given: []domain.Event{enrolled(t0), withdrawn(t1)},
			When:  withdraw(courseID),
		},
		{
			Name: "rejects a course the learner never enrolled in",
			When: withdraw(courseID),
			Err:  learner.ErrNotEnrolled, Kind: domain.Conflict,
		},
		{
			Name:  "rejects another course",
			Given: []domain.Event{enrolled(t0)},
			When:  withdraw("c-other"),
			Err:   learner.ErrNotEnrolled, Kind: domain.Conflict,
		},
		{
			Name:  "rejects a completed course",
			Given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1), moduleCompleted("types", t1), courseCompleted(t1)},
			When:  withdraw(courseID),
			Err:   learner.ErrCourseAlreadyCompleted, Kind: domain.Conflict,
		},
	})
}

func TestCompleteModule(t *testing.T) {
	complete := func(c *course.Course, moduleID string) func(*attempt) error {
		return func(a *attempt) (err error) {
			a.completed, err = a.CompleteModule(c, moduleID, t2)
			return err
		}
	}
	threeModules := newCourse(courseID, published, "intro", "types", "generics")
	completedCourse := []domain.Event{enrolled(t0), moduleCompleted("intro", t1), moduleCompleted("types", t1), courseCompleted(t1)}
	run(t, []testCase{
		{
			Name:  "records a completed module",
			Given: []domain.Event{enrolled(t0)},
			When:  complete(twoModules, "intro"),
			Then:  []domain.Event{moduleCompleted("intro", t2)},
		},
		{
			Name:  "completes the course with its last module",
			Given: []domain.Event{enrolled(t0), moduleCompleted("types", t1)},
			When:  complete(twoModules, "intro"),
			Then:  []domain.Event{moduleCompleted("intro", t2), courseCompleted(t2)},
			Check: reportsCompleted(true),
		},
		{
			Name:  "completes a course of one module",
			Given: []domain.Event{enrolled(t0)},
			When:  complete(newCourse(courseID, published, "intro"), "intro"),
			Then:  []domain.Event{moduleCompleted("intro", t2), courseCompleted(t2)},
			Check: reportsCompleted(true),
		},
		{
			Name:  "does not complete the course while a module added later is left",
			Given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1)},
			When:  complete(threeModules, "types"),
			Then:  []domain.Event{moduleCompleted("types", t2)},
		},
		{
			Name:  "records nothing for a module already completed",
			Given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1)},
			When:  complete(twoModules, "intro"),
		},
		{
			Name:  "records nothing for a module of a completed course and reports it completed",
			Given: completedCourse,
			When:  complete(twoModules, "types"),
			Check: reportsCompleted(true),
		},
		{
			Name:  "completes a module added after the course was completed, without completing it again",
			Given: completedCourse,
			When:  complete(threeModules, "generics"),
			Then:  []domain.Event{moduleCompleted("generics", t2)},
			Check: reportsCompleted(true),
		},
		{
			Name:  "completes a module of an archived course the learner is enrolled in",
			Given: []domain.Event{enrolled(t0)},
			When:  complete(newCourse(courseID, archived, "intro", "types"), "intro"),
			Then:  []domain.Event{moduleCompleted("intro", t2)},
		},
		{
			Name:  "rejects a course that does not exist",
			Given: []domain.Event{enrolled(t0)},
			When:  complete(course.New(courseID), "intro"),
			Err:   learner.ErrCourseNotFound, Kind: domain.NotFound, Field: "courseId",
		},
		{
			Name:  "rejects a missing course",
			Given: []domain.Event{enrolled(t0)},
			When:  complete(nil, "intro"),
			Err:   learner.ErrCourseNotFound, Kind: domain.NotFound, Field: "courseId",
		},
		{
			Name:  "rejects a module the course does not have",
			Given: []domain.Event{enrolled(t0)},
			When:  complete(twoModules, "generics"),
			Err:   learner.ErrModuleNotFound, Kind: domain.NotFound, Field: "moduleId",
		},
		{
			Name: "rejects a learner who never enrolled",
			When: complete(twoModules, "intro"),
			Err:  learner.ErrNotEnrolled, Kind: domain.Conflict,
		},
		{
			Name:  "rejects a learner who withdrew",
			Given: []domain.Event{enrolled(t0), withdrawn(t1)},
			When:  complete(twoModules, "intro"),
			Err:   learner.ErrNotEnrolled, Kind: domain.Conflict,
		},
		{
			Name:  "rejects a learner who withdrew even from a module already completed",
			Given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1), withdrawn(t1)},
			When:  complete(twoModules, "intro"),
			Err:   learner.ErrNotEnrolled, Kind: domain.Conflict,
		},
	})
}

func TestEnrollments(t *testing.T) {
	l := learner.New(id)
	for _, e := range []domain.Event{
		learner.Enrolled{LearnerID: id, CourseID: "c-b", At: t1},
		learner.Enrolled{LearnerID: id, CourseID: "c-late", At: t2},
		learner.Enrolled{LearnerID: id, CourseID: "c-a", At: t1},
		learner.Enrolled{LearnerID: id, CourseID: "c-first", At: t0},
		learner.ModuleCompleted{LearnerID: id, CourseID: "c-first", ModuleID: "m2", At: t1},
		learner.ModuleCompleted{LearnerID: id, CourseID: "c-first", ModuleID: "m1", At: t2},
		learner.CourseCompleted{LearnerID: id, CourseID: "c-first", At: t2},
		learner.Withdrawn{LearnerID: id, CourseID: "c-late", At: t3},
	} {
		l.Apply(e)
	}
	want := []learner.Enrollment{
		{CourseID: "c-first", Status: learner.StatusCompleted, CompletedModules: []string{"m2", "m1"}, EnrolledAt: t0, CompletedAt: t2, LastActivityAt: t2},
		{CourseID: "c-a", Status: learner.StatusActive, EnrolledAt: t1, LastActivityAt: t1},
		{CourseID: "c-b", Status: learner.StatusActive, EnrolledAt: t1, LastActivityAt: t1},
		{CourseID: "c-late", Status: learner.StatusWithdrawn, EnrolledAt: t2, LastActivityAt: t3},
	}
	if diff := cmp.Diff(want, l.Enrollments(), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("enrollments (-want +got):\n%s", diff)
	}
	t.Run("returns copies", func(t *testing.T) {
		l.Enrollments()[0].CompletedModules[0] = "changed"
		e, ok := l.Enrollment("c-first")
		if !ok {
			t.Fatal("no enrollment in c-first")
		}
		e.CompletedModules[1] = "changed"
		if diff := cmp.Diff(want[0], e, cmpopts.IgnoreFields(learner.Enrollment{}, "CompletedModules")); diff != "" {
			t.Errorf("enrollment (-want +got):\n%s", diff)
		}
		if got, _ := l.Enrollment("c-first"); !slices.Equal(got.CompletedModules, []string{"m2", "m1"}) {
			t.Errorf("completed modules = %v after changing returned copies", got.CompletedModules)
		}
	})
	t.Run("tells an enrollment that does not exist", func(t *testing.T) {
		if e, ok := l.Enrollment("c-none"); ok {
			t.Errorf("Enrollment(c-none) = %+v, true", e)
		}
	})
}

func TestApply(t *testing.T) {
	history := []domain.Event{enrolled(t0), moduleCompleted("intro", t1), withdrawn(t1), resumed(t2), moduleCompleted("types", t2), courseCompleted(t2)}
	t.Run("accepts pointers to events", func(t *testing.T) {
		byValue, byPointer := learner.New(id), learner.New(id)
		for _, e := range history {
			byValue.Apply(e)
			// Take the address of a copy of the concrete value behind e.
			p := reflect.New(reflect.TypeOf(e))
			p.Elem().Set(reflect.ValueOf(e))
			byPointer.Apply(p.Interface().(domain.Event))
		}
		byPointer.Apply((*learner.Withdrawn)(nil))
		if diff := cmp.Diff(state(byValue), state(byPointer)); diff != "" {
			t.Errorf("state (-values +pointers):\n%s", diff)
		}
	})
	t.Run("ignores unknown events and events of an enrollment that does not exist", func(t *testing.T) {
		l := learner.New(id)
		l.Apply(unknown{})
		l.Apply(moduleCompleted("intro", t0))
		l.Apply(withdrawn(t0))
		l.Apply(courseCompleted(t0))
		if got := l.Enrollments(); len(got) != 0 {
			t.Errorf("enrollments = %+v, want none", got)
		}
	})
}

type unknown struct{}

func (unknown) EventType() string { return "test.unknown.v1" }

func TestClearChanges(t *testing.T) {
	l := learner.New(id)
	if err := l.Enroll(ada, twoModules, t0); err != nil {
		t.Fatal(err)
	}
	l.ClearChanges()
	if _, err := l.CompleteModule(twoModules, "intro", t1); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]domain.Event{moduleCompleted("intro", t1)}, l.Changes()); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}

func TestEvents(t *testing.T) {
	domaintest.CheckEvents(t, "learner.", learner.Events())
}

// BenchmarkReplay measures loading a learner with a long history: 20 courses of 100 modules each.
func BenchmarkReplay(b *testing.B) {
	var history []domain.Event
	for c := range 20 {
		cid := fmt.Sprintf("c-%d", c)
		history = append(history, learner.Enrolled{LearnerID: id, CourseID: cid, At: t0})
		for m := range 100 {
			history = append(history, learner.ModuleCompleted{LearnerID: id, CourseID: cid, ModuleID: fmt.Sprintf("m-%d", m), At: t1})
		}
		history = append(history, learner.CourseCompleted{LearnerID: id, CourseID: cid, At: t1})
	}
	b.ReportAllocs()
	for b.Loop() {
		l := learner.New(id)
		for _, e := range history {
			l.Apply(e)
		}
	}
}

// BenchmarkCompleteModule measures completing the modules of a 500-module course one by one.
func BenchmarkCompleteModule(b *testing.B) {
	modules := make([]string, course.MaxModules)
	for i := range modules {
		modules[i] = fmt.Sprintf("m-%d", i)
	}
	c := newCourse(courseID, published, modules...)
	b.ReportAllocs()
	for b.Loop() {
		l := learner.New(id)
		l.Apply(enrolled(t0))
		for _, m := range modules {
			if _, err := l.CompleteModule(c, m, t1); err != nil {
				b.Fatal(err)
			}
		}
	}
}
