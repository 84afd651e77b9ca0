package commands_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/internal/domaintest"
)

// The states most cases start from. Every slice is built fresh so no case shares a backing array.
func people() []action {
	return []action{registered("ins", "instructor"), registered("ada", "learner")}
}

func draftCourse() []action { return append(people(), created("go")) }

func draftWithModules() []action {
	return append(draftCourse(), addModule("go", "m1", "Intro"), addModule("go", "m2", "Types"))
}

func publishedCourse() []action { return append(draftWithModules(), publish("go")) }

func adaEnrolled() []action { return append(publishedCourse(), enroll("ada", "go")) }

func adaCompletedTheCourse() []action {
	return append(adaEnrolled(), complete("ada", "go", "m1"), complete("ada", "go", "m2"))
}

func ptr[T any](v T) *T { return &v }

// commandCase is one given / when / then against the real log: given these commands, when this
// one, then these events appended to stream and this answer, or this error and nothing appended.
type commandCase struct {
	name   string
	given  []action
	when   action
	stream string
	then   []domain.Event
	id     string // the answer's id
	// courseCompleted is CompleteModule's answer.
	courseCompleted bool
	err             error
	kind            domain.Kind
	field           string
	// caller sends the command; the zero value is EduTrack itself.
	caller domain.Actor
}

func runCases(t *testing.T, cases []commandCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, commands.Options{})
			e.do(e.h, tc.given...)
			before := e.read(tc.stream)
			headBefore := e.head()

			e.clock.Set(t1)
			m := meta()
			if tc.caller != (domain.Actor{}) {
				m.Actor = tc.caller
			}
			got, err := tc.when(context.Background(), e.h, m)
			domaintest.CheckErr(t, err, tc.err, tc.kind, tc.field)

			after := e.read(tc.stream)
			if len(after) < len(before) {
				t.Fatalf("stream %s shrank from %d to %d events", tc.stream, len(before), len(after))
			}
			added := after[len(before):]
			if diff := cmp.Diff(tc.then, e.decode(added), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("appended to %s (-want +got):\n%s", tc.stream, diff)
			}
			for _, r := range added {
				if diff := cmp.Diff(metadataOf(m), r.Metadata); diff != "" {
					t.Errorf("metadata of %s v%d (-want +got):\n%s", r.StreamID, r.Version, diff)
				}
			}
			if err != nil || len(tc.then) == 0 {
				if h := e.head(); h != headBefore {
					t.Errorf("log head moved from %d to %d, want nothing appended", headBefore, h)
				}
			}
			if err != nil {
				return
			}
			// The answer names the stream's last event: the command's own, or the current one
			// when it changed nothing.
			want := answer{Result: commands.Result{ID: tc.id, Changed: len(tc.then) > 0}, CourseCompleted: tc.courseCompleted}
			if len(after) > 0 {
				last := after[len(after)-1]
				want.Version, want.Position = last.Version, last.Position
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("answer (-want +got):\n%s", diff)
			}
			if len(tc.then) > 0 && got.Position != e.head() {
				t.Errorf("answer position %d, log head %d: want the command's last event to be the head", got.Position, e.head())
			}
		})
	}
}

func TestRegisterUser(t *testing.T) {
	runCases(t, []commandCase{
		{
			name:   "registers a learner",
			when:   registerUser(commands.RegisterUser{ID: "ada", Name: "Ada Lovelace", Email: "ada@example.com", Role: "learner"}),
			stream: "user-ada",
			then:   []domain.Event{user.Registered{UserID: "ada", Name: "Ada Lovelace", Email: "ada@example.com", Role: domain.Learner, At: t1}},
			id:     "ada",
		},
		{
			name:   "registers an instructor",
			when:   registerUser(commands.RegisterUser{ID: "ins", Name: "Grace", Email: "grace@example.com", Role: "instructor"}),
			stream: "user-ins",
			then:   []domain.Event{user.Registered{UserID: "ins", Name: "Grace", Email: "grace@example.com", Role: domain.Instructor, At: t1}},
			id:     "ins",
		},
		{
			name:   "rejects an unknown role",
			when:   registerUser(commands.RegisterUser{ID: "ada", Name: "Ada", Email: "ada@example.com", Role: "admin"}),
			stream: "user-ada",
			kind:   domain.Invalid, field: "role",
		},
		{
			name:   "rejects an invalid email",
			when:   registerUser(commands.RegisterUser{ID: "ada", Name: "Ada", Email: "Ada <ada@example.com>", Role: "learner"}),
			stream: "user-ada",
			kind:   domain.Invalid, field: "email",
		},
		{
			name:   "rejects a name over 200 characters",
			when:   registerUser(commands.RegisterUser{ID: "ada", Name: strings.Repeat("a", 201), Email: "ada@example.com", Role: "learner"}),
			stream: "user-ada",
			kind:   domain.Invalid, field: "name",
		},
		{
			name:   "rejects a second registration",
			given:  people(),
			when:   registerUser(commands.RegisterUser{ID: "ada", Name: "Ada", Email: "other@example.com", Role: "learner"}),
			stream: "user-ada",
			err:    user.ErrAlreadyRegistered, kind: domain.Conflict,
		},
		{
			name:   "answers the same registration again as a no-op",
			given:  people(),
			when:   registerUser(commands.RegisterUser{ID: "ada", Name: "Name of ada", Email: "ada@example.com", Role: "learner"}),
			stream: "user-ada",
			id:     "ada",
		},
	})
}

func TestUpdateUser(t *testing.T) {
	runCases(t, []commandCase{
		{
			name:   "changes name and email",
			given:  people(),
			when:   updateUser(commands.UpdateUser{ID: "ada", Name: ptr("Ada King"), Email: ptr("king@example.com")}),
			stream: "user-ada",
			then: []domain.Event{
				user.NameChanged{UserID: "ada", Name: "Ada King", At: t1},
				user.EmailChanged{UserID: "ada", Email: "king@example.com", At: t1},
			},
			id: "ada",
		},
		{
			name:   "keeps what the command leaves out",
			given:  people(),
			when:   updateUser(commands.UpdateUser{ID: "ada", Email: ptr("king@example.com")}),
			stream: "user-ada",
			then:   []domain.Event{user.EmailChanged{UserID: "ada", Email: "king@example.com", At: t1}},
			id:     "ada",
		},
		{
			name:   "changes nothing when the values are the current ones",
			given:  people(),
			when:   updateUser(commands.UpdateUser{ID: "ada", Name: ptr("Name of ada"), Email: ptr("ada@example.com")}),
			stream: "user-ada",
			id:     "ada",
		},
		{
			name:   "rejects an unknown user",
			given:  people(),
			when:   updateUser(commands.UpdateUser{ID: "nobody", Name: ptr("X")}),
			stream: "user-nobody",
			err:    user.ErrNotFound, kind: domain.NotFound,
		},
		{
			// The name change was decided before the email failed; none of it may reach the log.
			name:   "rejects an invalid email and appends not even the valid name",
			given:  people(),
			when:   updateUser(commands.UpdateUser{ID: "ada", Name: ptr("Ada King"), Email: ptr("not an email")}),
			stream: "user-ada",
			kind:   domain.Invalid, field: "email",
		},
	})
}

func TestCreateCourse(t *testing.T) {
	runCases(t, []commandCase{
		{
			name:  "creates a draft course",
			given: people(),
			when: createCourse(commands.CreateCourse{ID: "go", Title: "Go", Description: "Learn Go.", Category: "programming",
				Level: "intermediate", InstructorID: "ins"}),
			stream: "course-go",
			then: []domain.Event{course.Created{CourseID: "go", Title: "Go", Description: "Learn Go.", Category: "programming",
				Level: course.LevelIntermediate, InstructorID: "ins", At: t1}},
			id: "go",
		},
		{
			name:   "rejects an unknown instructor",
			given:  people(),
			when:   createCourse(commands.CreateCourse{ID: "go", Title: "Go", Category: "programming", Level: "beginner", InstructorID: "nobody"}),
			stream: "course-go",
			err:    course.ErrInstructorNotFound, kind: domain.NotFound, field: "instructorId",
		},
		{
			name:   "rejects a learner as instructor",
			given:  people(),
			when:   createCourse(commands.CreateCourse{ID: "go", Title: "Go", Category: "programming", Level: "beginner", InstructorID: "ada"}),
			stream: "course-go",
			err:    course.ErrNotAnInstructor, kind: domain.Conflict, field: "instructorId",
		},
		{
			name:   "rejects an existing course",
			given:  draftCourse(),
			when:   createCourse(commands.CreateCourse{ID: "go", Title: "Go again", Category: "programming", Level: "beginner", InstructorID: "ins"}),
			stream: "course-go",
			err:    course.ErrAlreadyExists, kind: domain.Conflict,
		},
		{
			name:   "rejects an unknown level",
			given:  people(),
			when:   createCourse(commands.CreateCourse{ID: "go", Title: "Go", Category: "programming", Level: "expert", InstructorID: "ins"}),
			stream: "course-go",
			kind:   domain.Invalid, field: "level",
		},
		{
			name:   "rejects a title over 200 characters",
			given:  people(),
			when:   createCourse(commands.CreateCourse{ID: "go", Title: strings.Repeat("t", 201), Category: "programming", Level: "beginner", InstructorID: "ins"}),
			stream: "course-go",
			kind:   domain.Invalid, field: "title",
		},
		{
			name:   "rejects a description over 10,000 characters",
			given:  people(),
			when:   createCourse(commands.CreateCourse{ID: "go", Title: "Go", Description: strings.Repeat("d", 10_001), Category: "programming", Level: "beginner", InstructorID: "ins"}),
			stream: "course-go",
			kind:   domain.Invalid, field: "description",
		},
	})
}

func TestUpdateCourseDetails(t *testing.T) {
	runCases(t, []commandCase{
		{
			name:   "changes the details it names and keeps the others",
			given:  draftCourse(),
			when:   updateCourse(commands.UpdateCourseDetails{ID: "go", Patch: course.DetailsPatch{Title: ptr("Go 2"), Level: ptr(course.LevelAdvanced)}}),
			stream: "course-go",
			then: []domain.Event{course.DetailsUpdated{CourseID: "go", Title: "Go 2", Description: "Learn Go.", Category: "programming",
				Level: course.LevelAdvanced, At: t1}},
			id: "go",
		},
		{
			name:   "changes nothing when the details are the current ones",
			given:  draftCourse(),
			when:   updateCourse(commands.UpdateCourseDetails{ID: "go", Patch: course.DetailsPatch{Title: ptr("Go")}}),
			stream: "course-go",
			id:     "go",
		},
		{
			name:   "rejects an unknown course",
			given:  draftCourse(),
			when:   updateCourse(commands.UpdateCourseDetails{ID: "rust", Patch: course.DetailsPatch{Title: ptr("Rust")}}),
			stream: "course-rust",
			err:    course.ErrNotFound, kind: domain.NotFound,
		},
		{
			name:   "rejects an archived course",
			given:  append(publishedCourse(), archive("go")),
			when:   updateCourse(commands.UpdateCourseDetails{ID: "go", Patch: course.DetailsPatch{Title: ptr("Go 2")}}),
			stream: "course-go",
			err:    course.ErrArchived, kind: domain.Conflict,
		},
		{
			name:   "rejects an empty title",
			given:  draftCourse(),
			when:   updateCourse(commands.UpdateCourseDetails{ID: "go", Patch: course.DetailsPatch{Title: ptr("  ")}}),
			stream: "course-go",
			kind:   domain.Invalid, field: "title",
		},
	})
}

func TestAddModule(t *testing.T) {
	runCases(t, []commandCase{
		{
			name:   "adds a module to a draft",
			given:  draftCourse(),
			when:   addModule("go", "m1", "Intro"),
			stream: "course-go",
			then:   []domain.Event{course.ModuleAdded{CourseID: "go", ModuleID: "m1", Title: "Intro", At: t1}},
			id:     "m1",
		},
		{
			name:   "adds a module to a published course",
			given:  publishedCourse(),
			when:   addModule("go", "m3", "Generics"),
			stream: "course-go",
			then:   []domain.Event{course.ModuleAdded{CourseID: "go", ModuleID: "m3", Title: "Generics", At: t1}},
			id:     "m3",
		},
		{
			name:   "changes nothing when the same module is added again",
			given:  draftWithModules(),
			when:   addModule("go", "m1", "Intro"),
			stream: "course-go",
			id:     "m1",
		},
		{
			name:   "rejects a module id taken by another title",
			given:  draftWithModules(),
			when:   addModule("go", "m1", "Something else"),
			stream: "course-go",
			err:    course.ErrModuleExists, kind: domain.Conflict, field: "id",
		},
		{
			name:   "rejects an unknown course",
			given:  draftCourse(),
			when:   addModule("rust", "m1", "Intro"),
			stream: "course-rust",
			err:    course.ErrNotFound, kind: domain.NotFound,
		},
		{
			name:   "rejects an archived course",
			given:  append(publishedCourse(), archive("go")),
			when:   addModule("go", "m3", "Generics"),
			stream: "course-go",
			err:    course.ErrArchived, kind: domain.Conflict,
		},
	})
}

func TestPublishCourse(t *testing.T) {
	runCases(t, []commandCase{
		{
			name:   "publishes a draft with modules",
			given:  draftWithModules(),
			when:   publish("go"),
			stream: "course-go",
			then:   []domain.Event{course.Published{CourseID: "go", At: t1}},
			id:     "go",
		},
		{
			name:   "changes nothing when published twice",
			given:  publishedCourse(),
			when:   publish("go"),
			stream: "course-go",
			id:     "go",
		},
		{
			name:   "rejects a course without modules",
			given:  draftCourse(),
			when:   publish("go"),
			stream: "course-go",
			err:    course.ErrNoModules, kind: domain.Conflict,
		},
		{
			name:   "rejects an archived course",
			given:  append(publishedCourse(), archive("go")),
			when:   publish("go"),
			stream: "course-go",
			err:    course.ErrArchived, kind: domain.Conflict,
		},
		{
			name:   "rejects an unknown course",
			when:   publish("go"),
			stream: "course-go",
			err:    course.ErrNotFound, kind: domain.NotFound,
		},
	})
}

func TestArchiveCourse(t *testing.T) {
	runCases(t, []commandCase{
		{
			name:   "archives a published course",
			given:  publishedCourse(),
			when:   archive("go"),
			stream: "course-go",
			then:   []domain.Event{course.Archived{CourseID: "go", At: t1}},
			id:     "go",
		},
		{
			name:   "changes nothing when archived twice",
			given:  append(publishedCourse(), archive("go")),
			when:   archive("go"),
			stream: "course-go",
			id:     "go",
		},
		{
			name:   "rejects a draft",
			given:  draftWithModules(),
			when:   archive("go"),
			stream: "course-go",
			err:    course.ErrNotPublished, kind: domain.Conflict,
		},
	})
}

func TestEnrollStudent(t *testing.T) {
	runCases(t, []commandCase{
		{
			name:   "enrolls a learner in a published course",
			given:  publishedCourse(),
			when:   enroll("ada", "go"),
			stream: "learner-ada",
			then:   []domain.Event{learner.Enrolled{LearnerID: "ada", CourseID: "go", At: t1}},
			id:     "ada",
		},
		{
			name:   "changes nothing when enrolled twice",
			given:  adaEnrolled(),
			when:   enroll("ada", "go"),
			stream: "learner-ada",
			id:     "ada",
		},
		{
			name:   "resumes a withdrawn enrollment",
			given:  append(adaEnrolled(), withdraw("ada", "go")),
			when:   enroll("ada", "go"),
			stream: "learner-ada",
			then:   []domain.Event{learner.Enrolled{LearnerID: "ada", CourseID: "go", Resumed: true, At: t1}},
			id:     "ada",
		},
		{
			name:   "rejects a draft course",
			given:  draftWithModules(),
			when:   enroll("ada", "go"),
			stream: "learner-ada",
			err:    learner.ErrCourseNotPublished, kind: domain.Conflict,
		},
		{
			name:   "rejects an archived course",
			given:  append(publishedCourse(), archive("go")),
			when:   enroll("ada", "go"),
			stream: "learner-ada",
			err:    learner.ErrCourseArchived, kind: domain.Conflict,
		},
		{
			name:   "rejects an unknown course",
			given:  people(),
			when:   enroll("ada", "rust"),
			stream: "learner-ada",
			err:    learner.ErrCourseNotFound, kind: domain.NotFound, field: "courseId",
		},
		{
			name:   "rejects an unregistered learner",
			given:  publishedCourse(),
			when:   enroll("nobody", "go"),
			stream: "learner-nobody",
			err:    learner.ErrLearnerNotFound, kind: domain.NotFound, field: "learnerId",
		},
		{
			name:   "rejects an instructor",
			given:  publishedCourse(),
			when:   enroll("ins", "go"),
			stream: "learner-ins",
			err:    learner.ErrNotALearner, kind: domain.Conflict, field: "learnerId",
		},
	})
}

func TestWithdrawEnrollment(t *testing.T) {
	runCases(t, []commandCase{
		{
			name:   "withdraws an active enrollment",
			given:  adaEnrolled(),
			when:   withdraw("ada", "go"),
			stream: "learner-ada",
			then:   []domain.Event{learner.Withdrawn{LearnerID: "ada", CourseID: "go", At: t1}},
			id:     "ada",
		},
		{
			name:   "changes nothing when withdrawn twice",
			given:  append(adaEnrolled(), withdraw("ada", "go")),
			when:   withdraw("ada", "go"),
			stream: "learner-ada",
			id:     "ada",
		},
		{
			name:   "rejects a learner who never enrolled",
			given:  publishedCourse(),
			when:   withdraw("ada", "go"),
			stream: "learner-ada",
			err:    learner.ErrNotEnrolled, kind: domain.Conflict,
		},
		{
			name:   "rejects a completed course",
			given:  adaCompletedTheCourse(),
			when:   withdraw("ada", "go"),
			stream: "learner-ada",
			err:    learner.ErrCourseAlreadyCompleted, kind: domain.Conflict,
		},
		{
			name:   "rejects an unknown course",
			given:  adaEnrolled(),
			when:   withdraw("ada", "rust"),
			stream: "learner-ada",
			err:    learner.ErrCourseNotFound, kind: domain.NotFound, field: "courseId",
		},
		{
			name:   "rejects an unregistered learner",
			given:  publishedCourse(),
			when:   withdraw("nobody", "go"),
			stream: "learner-nobody",
			err:    learner.ErrLearnerNotFound, kind: domain.NotFound, field: "learnerId",
		},
	})
}

func TestCompleteModule(t *testing.T) {
	runCases(t, []commandCase{
		{
			name:   "completes a module",
			given:  adaEnrolled(),
			when:   complete("ada", "go", "m1"),
			stream: "learner-ada",
			then:   []domain.Event{learner.ModuleCompleted{LearnerID: "ada", CourseID: "go", ModuleID: "m1", At: t1}},
			id:     "ada",
		},
		{
			name:   "completes the course with its last module in the same append",
			given:  append(adaEnrolled(), complete("ada", "go", "m1")),
			when:   complete("ada", "go", "m2"),
			stream: "learner-ada",
			then: []domain.Event{
				learner.ModuleCompleted{LearnerID: "ada", CourseID: "go", ModuleID: "m2", At: t1},
				learner.CourseCompleted{LearnerID: "ada", CourseID: "go", At: t1},
			},
			id:              "ada",
			courseCompleted: true,
		},
		{
			name:   "changes nothing when the module is already completed",
			given:  append(adaEnrolled(), complete("ada", "go", "m1")),
			when:   complete("ada", "go", "m1"),
			stream: "learner-ada",
			id:     "ada",
		},
		{
			name:            "changes nothing in a completed course and still says it is completed",
			given:           adaCompletedTheCourse(),
			when:            complete("ada", "go", "m1"),
			stream:          "learner-ada",
			id:              "ada",
			courseCompleted: true,
		},
		{
			name:   "completes a module added after the course was completed, without completing it again",
			given:  append(adaCompletedTheCourse(), addModule("go", "m3", "Generics")),
			when:   complete("ada", "go", "m3"),
			stream: "learner-ada",
			then:   []domain.Event{learner.ModuleCompleted{LearnerID: "ada", CourseID: "go", ModuleID: "m3", At: t1}},
			id:     "ada", courseCompleted: true,
		},
		{
			name:   "rejects a learner who is not enrolled",
			given:  publishedCourse(),
			when:   complete("ada", "go", "m1"),
			stream: "learner-ada",
			err:    learner.ErrNotEnrolled, kind: domain.Conflict,
		},
		{
			name:   "rejects a withdrawn learner",
			given:  append(adaEnrolled(), withdraw("ada", "go")),
			when:   complete("ada", "go", "m1"),
			stream: "learner-ada",
			err:    learner.ErrNotEnrolled, kind: domain.Conflict,
		},
		{
			name:   "rejects an unknown module",
			given:  adaEnrolled(),
			when:   complete("ada", "go", "m9"),
			stream: "learner-ada",
			err:    learner.ErrModuleNotFound, kind: domain.NotFound, field: "moduleId",
		},
		{
			name:   "rejects an unknown course",
			given:  adaEnrolled(),
			when:   complete("ada", "rust", "m1"),
			stream: "learner-ada",
			err:    learner.ErrCourseNotFound, kind: domain.NotFound, field: "courseId",
		},
		{
			name:   "answers not found on learnerId for an id that is not a registered user",
			given:  publishedCourse(),
			when:   complete("nobody", "go", "m1"),
			stream: "learner-nobody",
			err:    learner.ErrLearnerNotFound, kind: domain.NotFound, field: "learnerId",
		},
		{
			name:   "answers not found on learnerId for an instructor",
			given:  publishedCourse(),
			when:   complete("ins", "go", "m1"),
			stream: "learner-ins",
			err:    learner.ErrLearnerNotFound, kind: domain.NotFound, field: "learnerId",
		},
	})
}

func TestNew(t *testing.T) {
	e := newEnv(t, commands.Options{})
	t.Run("refuses_a_nil_store", func(t *testing.T) {
		if _, err := commands.New(nil, e.clock.Now, commands.Options{}); err == nil {
			t.Error("New(nil store) succeeded, want an error")
		}
	})
	t.Run("refuses_a_nil_clock", func(t *testing.T) {
		if _, err := commands.New(e.store, nil, commands.Options{}); err == nil {
			t.Error("New(nil clock) succeeded, want an error")
		}
	})
}

// A rule that fails after the aggregate recorded part of a change must leave the cached state as
// the log has it: the rejected name change must not make the same change look like a no-op.
func TestRejectedCommandLeavesNoTraceInTheCache(t *testing.T) {
	e := newEnv(t, commands.Options{})
	e.do(e.h, people()...)
	_, err := e.h.UpdateUser(context.Background(), meta(), commands.UpdateUser{ID: "ada", Name: ptr("Ada King"), Email: ptr("bad")})
	domaintest.CheckErr(t, err, nil, domain.Invalid, "email")

	m := meta()
	if _, err := e.h.UpdateUser(context.Background(), m, commands.UpdateUser{ID: "ada", Name: ptr("Ada King")}); err != nil {
		t.Fatalf("rename: %v", err)
	}
	got := e.decode(e.read("user-ada"))
	want := []domain.Event{
		user.Registered{UserID: "ada", Name: "Name of ada", Email: "ada@example.com", Role: domain.Learner, At: t0},
		user.NameChanged{UserID: "ada", Name: "Ada King", At: t0},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("user-ada (-want +got):\n%s", diff)
	}
}

// A handler whose cache holds one aggregate of each kind must still decide on the whole history.
func TestOneEntryCache(t *testing.T) {
	e := newEnv(t, commands.Options{CacheSize: 1})
	e.do(e.h, publishedCourse()...)
	e.do(e.h, registered("bob", "learner"), created("rust"), addModule("rust", "r1", "Ownership"), publish("rust"))
	e.do(e.h, enroll("ada", "go"), enroll("bob", "rust"), enroll("bob", "go"), enroll("ada", "rust"))
	e.do(e.h, complete("ada", "go", "m1"), complete("bob", "go", "m1"), complete("bob", "rust", "r1"),
		complete("ada", "go", "m1"), complete("bob", "go", "m1"))
	last := e.do(e.h, complete("ada", "go", "m2"))[0]
	if !last.CourseCompleted {
		t.Errorf("ada's last module: courseCompleted = false, want true")
	}

	want := map[string][]domain.Event{
		"learner-ada": {
			learner.Enrolled{LearnerID: "ada", CourseID: "go", At: t0},
			learner.Enrolled{LearnerID: "ada", CourseID: "rust", At: t0},
			learner.ModuleCompleted{LearnerID: "ada", CourseID: "go", ModuleID: "m1", At: t0},
			learner.ModuleCompleted{LearnerID: "ada", CourseID: "go", ModuleID: "m2", At: t0},
			learner.CourseCompleted{LearnerID: "ada", CourseID: "go", At: t0},
		},
		"learner-bob": {
			learner.Enrolled{LearnerID: "bob", CourseID: "rust", At: t0},
			learner.Enrolled{LearnerID: "bob", CourseID: "go", At: t0},
			learner.ModuleCompleted{LearnerID: "bob", CourseID: "go", ModuleID: "m1", At: t0},
			learner.ModuleCompleted{LearnerID: "bob", CourseID: "rust", ModuleID: "r1", At: t0},
			learner.CourseCompleted{LearnerID: "bob", CourseID: "rust", At: t0},
		},
	}
	for _, stream := range slices.Sorted(maps.Keys(want)) {
		if diff := cmp.Diff(want[stream], e.decode(e.read(stream))); diff != "" {
			t.Errorf("%s (-want +got):\n%s", stream, diff)
		}
	}
}
