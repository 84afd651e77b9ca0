package learner_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/domain/user"
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

// testCase is one given / when / then: given events applied, when a command, then the events it
// records and what CompleteModule reports, or the error it returns (err with errors.Is, kind and
// field for every error).
type testCase struct {
	name      string
	given     []domain.Event
	when      func(l *learner.Learner) (completed bool, err error)
	then      []domain.Event
	completed bool
	err       error
	kind      domain.Kind
	field     string
}

func run(t *testing.T, cases []testCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := learner.New(id)
			for _, e := range tc.given {
				l.Apply(e)
			}
			completed, err := tc.when(l)
			checkErr(t, err, tc.err, tc.kind, tc.field)
			if completed != tc.completed {
				t.Errorf("completed = %v, want %v", completed, tc.completed)
			}
			if diff := cmp.Diff(tc.then, l.Changes(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			// Replaying what was recorded must reach the state that recording reached.
			replayed := learner.New(id)
			for _, e := range slices.Concat(tc.given, l.Changes()) {
				replayed.Apply(e)
			}
			if diff := cmp.Diff(state(l), state(replayed)); diff != "" {
				t.Errorf("replayed state (-recorded +replayed):\n%s", diff)
			}
		})
	}
}

func checkErr(t *testing.T, err, want error, kind domain.Kind, field string) {
	t.Helper()
	if want == nil && kind == domain.Internal {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("err = nil, want %v (kind %v, field %q)", want, kind, field)
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("err = %v, want %v", err, want)
	}
	if kind != domain.Internal && domain.KindOf(err) != kind {
		t.Errorf("kind = %v, want %v (err %v)", domain.KindOf(err), kind, err)
	}
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("err %v is not a *domain.Error", err)
	}
	if de.Field != field {
		t.Errorf("field = %q, want %q", de.Field, field)
	}
}

type snapshot struct {
	ID          string
	Enrollments []learner.Enrollment
}

func state(l *learner.Learner) snapshot {
	return snapshot{ID: l.ID(), Enrollments: l.Enrollments()}
}

func enroll(person *user.User, c *course.Course, at time.Time) func(*learner.Learner) (bool, error) {
	return func(l *learner.Learner) (bool, error) { return false, l.Enroll(person, c, at) }
}

func TestEnroll(t *testing.T) {
	archivedCourse := newCourse(courseID, archived, "intro", "types")
	run(t, []testCase{
		{
			name: "enrolls in a published course",
			when: enroll(ada, twoModules, t0),
			then: []domain.Event{enrolled(t0)},
		},
		{
			name:  "records nothing when already enrolled",
			given: []domain.Event{enrolled(t0)},
			when:  enroll(ada, twoModules, t1),
		},
		{
			name:  "records nothing when the course is completed",
			given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1), moduleCompleted("types", t1), courseCompleted(t1)},
			when:  enroll(ada, twoModules, t2),
		},
		{
			name:  "records nothing when already enrolled in an archived course",
			given: []domain.Event{enrolled(t0)},
			when:  enroll(ada, archivedCourse, t1),
		},
		{
			name:  "records nothing when the archived course is completed",
			given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1), moduleCompleted("types", t1), courseCompleted(t1)},
			when:  enroll(ada, archivedCourse, t2),
		},
		{
			name:  "resumes after a withdrawal",
			given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1), withdrawn(t2)},
			when:  enroll(ada, twoModules, t3),
			then:  []domain.Event{resumed(t3)},
		},
		{
			name: "rejects a draft course",
			when: enroll(ada, newCourse(courseID, draft, "intro"), t0),
			err:  learner.ErrCourseNotPublished, kind: domain.Conflict,
		},
		{
			name: "rejects an archived course",
			when: enroll(ada, archivedCourse, t0),
			err:  learner.ErrCourseArchived, kind: domain.Conflict,
		},
		{
			name:  "rejects resuming in an archived course",
			given: []domain.Event{enrolled(t0), withdrawn(t1)},
			when:  enroll(ada, archivedCourse, t2),
			err:   learner.ErrCourseArchived, kind: domain.Conflict,
		},
		{
			name: "rejects a course that does not exist",
			when: enroll(ada, course.New(courseID), t0),
			err:  learner.ErrCourseNotFound, kind: domain.NotFound, field: "courseId",
		},
		{
			name: "rejects a missing course",
			when: enroll(ada, nil, t0),
			err:  learner.ErrCourseNotFound, kind: domain.NotFound, field: "courseId",
		},
		{
			name: "rejects a user who is not registered",
			when: enroll(user.New(id), twoModules, t0),
			err:  learner.ErrLearnerNotFound, kind: domain.NotFound, field: "learnerId",
		},
		{
			name: "rejects a missing user",
			when: enroll(nil, twoModules, t0),
			err:  learner.ErrLearnerNotFound, kind: domain.NotFound, field: "learnerId",
		},
		{
			name: "rejects another learner",
			when: enroll(newUser("u-bob", domain.Learner), twoModules, t0),
			err:  learner.ErrLearnerNotFound, kind: domain.NotFound, field: "learnerId",
		},
		{
			name: "rejects an instructor",
			when: enroll(newUser(id, domain.Instructor), twoModules, t0),
			err:  learner.ErrNotALearner, kind: domain.Conflict, field: "learnerId",
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
	withdraw := func(cid string) func(*learner.Learner) (bool, error) {
		return func(l *learner.Learner) (bool, error) { return false, l.Withdraw(cid, t2) }
	}
	run(t, []testCase{
		{
			name:  "withdraws an active enrollment",
			given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1)},
			when:  withdraw(courseID),
			then:  []domain.Event{withdrawn(t2)},
		},
		{
			name:  "records nothing when already withdrawn",
			given: []domain.Event{enrolled(t0), withdrawn(t1)},
			when:  withdraw(courseID),
		},
		{
			name: "rejects a course the learner never enrolled in",
			when: withdraw(courseID),
			err:  learner.ErrNotEnrolled, kind: domain.Conflict,
		},
		{
			name:  "rejects another course",
			given: []domain.Event{enrolled(t0)},
			when:  withdraw("c-other"),
			err:   learner.ErrNotEnrolled, kind: domain.Conflict,
		},
		{
			name:  "rejects a completed course",
			given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1), moduleCompleted("types", t1), courseCompleted(t1)},
			when:  withdraw(courseID),
			err:   learner.ErrCourseAlreadyCompleted, kind: domain.Conflict,
		},
	})
}

func TestCompleteModule(t *testing.T) {
	complete := func(c *course.Course, moduleID string) func(*learner.Learner) (bool, error) {
		return func(l *learner.Learner) (bool, error) { return l.CompleteModule(c, moduleID, t2) }
	}
	threeModules := newCourse(courseID, published, "intro", "types", "generics")
	completedCourse := []domain.Event{enrolled(t0), moduleCompleted("intro", t1), moduleCompleted("types", t1), courseCompleted(t1)}
	run(t, []testCase{
		{
			name:  "records a completed module",
			given: []domain.Event{enrolled(t0)},
			when:  complete(twoModules, "intro"),
			then:  []domain.Event{moduleCompleted("intro", t2)},
		},
		{
			name:      "completes the course with its last module",
			given:     []domain.Event{enrolled(t0), moduleCompleted("types", t1)},
			when:      complete(twoModules, "intro"),
			then:      []domain.Event{moduleCompleted("intro", t2), courseCompleted(t2)},
			completed: true,
		},
		{
			name:      "completes a course of one module",
			given:     []domain.Event{enrolled(t0)},
			when:      complete(newCourse(courseID, published, "intro"), "intro"),
			then:      []domain.Event{moduleCompleted("intro", t2), courseCompleted(t2)},
			completed: true,
		},
		{
			name:  "does not complete the course while a module added later is left",
			given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1)},
			when:  complete(threeModules, "types"),
			then:  []domain.Event{moduleCompleted("types", t2)},
		},
		{
			name:  "records nothing for a module already completed",
			given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1)},
			when:  complete(twoModules, "intro"),
		},
		{
			name:      "records nothing for a module of a completed course and reports it completed",
			given:     completedCourse,
			when:      complete(twoModules, "types"),
			completed: true,
		},
		{
			name:      "completes a module added after the course was completed, without completing it again",
			given:     completedCourse,
			when:      complete(threeModules, "generics"),
			then:      []domain.Event{moduleCompleted("generics", t2)},
			completed: true,
		},
		{
			name:  "completes a module of an archived course the learner is enrolled in",
			given: []domain.Event{enrolled(t0)},
			when:  complete(newCourse(courseID, archived, "intro", "types"), "intro"),
			then:  []domain.Event{moduleCompleted("intro", t2)},
		},
		{
			name:  "rejects a course that does not exist",
			given: []domain.Event{enrolled(t0)},
			when:  complete(course.New(courseID), "intro"),
			err:   learner.ErrCourseNotFound, kind: domain.NotFound, field: "courseId",
		},
		{
			name:  "rejects a missing course",
			given: []domain.Event{enrolled(t0)},
			when:  complete(nil, "intro"),
			err:   learner.ErrCourseNotFound, kind: domain.NotFound, field: "courseId",
		},
		{
			name:  "rejects a module the course does not have",
			given: []domain.Event{enrolled(t0)},
			when:  complete(twoModules, "generics"),
			err:   learner.ErrModuleNotFound, kind: domain.NotFound, field: "moduleId",
		},
		{
			name: "rejects a learner who never enrolled",
			when: complete(twoModules, "intro"),
			err:  learner.ErrNotEnrolled, kind: domain.Conflict,
		},
		{
			name:  "rejects a learner who withdrew",
			given: []domain.Event{enrolled(t0), withdrawn(t1)},
			when:  complete(twoModules, "intro"),
			err:   learner.ErrNotEnrolled, kind: domain.Conflict,
		},
		{
			name:  "rejects a learner who withdrew even from a module already completed",
			given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1), withdrawn(t1)},
			when:  complete(twoModules, "intro"),
			err:   learner.ErrNotEnrolled, kind: domain.Conflict,
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
	checkEvents(t, "learner.", learner.Events())
}

// checkEvents checks that every event type has a unique versioned name and survives a JSON round
// trip with camelCase keys.
func checkEvents(t *testing.T, prefix string, events []domain.Event) {
	seen := map[string]bool{}
	for _, e := range events {
		name := e.EventType()
		if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, ".v1") || seen[name] {
			t.Errorf("event type %q: want unique, %q prefix, .v1 suffix", name, prefix)
		}
		seen[name] = true
		typ := reflect.TypeOf(e)
		if typ.Kind() != reflect.Struct {
			t.Errorf("%s: want a value type, got %v", name, typ)
			continue
		}
		for i := range typ.NumField() {
			tag := typ.Field(i).Tag.Get("json")
			if tag == "" || strings.ToLower(tag[:1]) != tag[:1] {
				t.Errorf("%s.%s: json tag %q is not camelCase", name, typ.Field(i).Name, tag)
			}
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		back := reflect.New(typ)
		if err := json.Unmarshal(b, back.Interface()); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(e, back.Elem().Interface()); diff != "" {
			t.Errorf("%s round trip (-want +got):\n%s", name, diff)
		}
	}
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
