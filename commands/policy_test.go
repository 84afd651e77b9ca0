package commands_test

import (
	"context"
	"testing"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/domain/user"
)

// The callers of the policy cases: ins teaches go, ins2 teaches nothing, ada and bob learn.
var (
	admin    = domain.Actor{UserID: "root", Role: domain.Admin}
	auditor  = domain.Actor{UserID: "aud", Role: domain.Auditor}
	ins      = domain.Actor{UserID: "ins", Role: domain.Instructor}
	ins2     = domain.Actor{UserID: "ins2", Role: domain.Instructor}
	ada      = domain.Actor{UserID: "ada", Role: domain.Learner}
	bob      = domain.Actor{UserID: "bob", Role: domain.Learner}
	everyone = []domain.Actor{admin, auditor, ins, ins2, ada, bob}
)

func recordDisclosure(c commands.RecordDisclosure) action {
	return func(ctx context.Context, h *commands.Handler, m commands.Meta) (answer, error) {
		return plain(h.RecordDisclosure(ctx, m, c))
	}
}

// outcome is what one caller gets from a command: the events and the answer's id, or an error.
// A caller a case names no outcome for gets ErrForbidden.
type outcome struct {
	then  []domain.Event
	id    string
	err   error
	kind  domain.Kind
	field string
}

var forbidden = outcome{err: commands.ErrForbidden, kind: domain.Forbidden}

// policyCases builds one case per caller of everyone.
func policyCases(name string, given []action, when action, stream string, outcomes map[domain.Actor]outcome) []commandCase {
	var cases []commandCase
	for _, p := range everyone {
		o, ok := outcomes[p]
		if !ok {
			o = forbidden
		}
		cases = append(cases, commandCase{name: name + " as " + p.UserID, given: given, when: when, stream: stream,
			caller: p, then: o.then, id: o.id, err: o.err, kind: o.kind, field: o.field})
	}
	return cases
}

func TestPolicy(t *testing.T) {
	withIns2 := func(given []action) []action {
		return append(given, registered("ins2", "instructor"), registered("bob", "learner"))
	}
	courseNotFound := outcome{err: course.ErrNotFound, kind: domain.NotFound}
	learnerNotFound := outcome{err: learner.ErrLearnerNotFound, kind: domain.NotFound, field: "learnerId"}
	var cases []commandCase

	cases = append(cases, policyCases("registers a user", withIns2(nil),
		registerUser(commands.RegisterUser{ID: "cyd", Name: "Cyd", Email: "cyd@example.com", Role: "learner"}), "user-cyd",
		map[domain.Actor]outcome{admin: {id: "cyd", then: []domain.Event{user.Registered{UserID: "cyd", Name: "Cyd",
			Email: "cyd@example.com", Role: domain.Learner, At: t1}}}})...)
	cases = append(cases, policyCases("renames a user", withIns2(people()),
		updateUser(commands.UpdateUser{ID: "ada", Name: ptr("Ada King")}), "user-ada",
		map[domain.Actor]outcome{admin: {id: "ada", then: []domain.Event{user.NameChanged{UserID: "ada", Name: "Ada King", At: t1}}}})...)

	goCreated := course.Created{CourseID: "go2", Title: "Go", Description: "Learn Go.", Category: "programming",
		Level: course.LevelBeginner, InstructorID: "ins", At: t1}
	cases = append(cases, policyCases("creates a course taught by ins", withIns2(people()),
		createCourse(commands.CreateCourse{ID: "go2", Title: "Go", Description: "Learn Go.", Category: "programming", Level: "beginner", InstructorID: "ins"}),
		"course-go2", map[domain.Actor]outcome{
			admin: {id: "go2", then: []domain.Event{goCreated}},
			ins:   {id: "go2", then: []domain.Event{goCreated}},
			// Naming another instructor is refused for the role's sake: no instructor may.
			ins2: {kind: domain.Forbidden, field: "instructorId"},
		})...)

	owned := func(ev domain.Event) map[domain.Actor]outcome {
		return map[domain.Actor]outcome{admin: {id: "go", then: []domain.Event{ev}}, ins: {id: "go", then: []domain.Event{ev}}, ins2: courseNotFound}
	}
	cases = append(cases, policyCases("retitles a course", withIns2(draftCourse()),
		updateCourse(commands.UpdateCourseDetails{ID: "go", Patch: course.DetailsPatch{Title: ptr("Go 2")}}), "course-go",
		owned(course.DetailsUpdated{CourseID: "go", Title: "Go 2", Description: "Learn Go.", Category: "programming",
			Level: course.LevelBeginner, At: t1}))...)
	cases = append(cases, policyCases("adds a module", withIns2(draftCourse()), addModule("go", "m1", "Intro"), "course-go",
		map[domain.Actor]outcome{
			admin: {id: "m1", then: []domain.Event{course.ModuleAdded{CourseID: "go", ModuleID: "m1", Title: "Intro", At: t1}}},
			ins:   {id: "m1", then: []domain.Event{course.ModuleAdded{CourseID: "go", ModuleID: "m1", Title: "Intro", At: t1}}},
			ins2:  courseNotFound,
		})...)
	cases = append(cases, policyCases("publishes a course", withIns2(draftWithModules()), publish("go"), "course-go",
		owned(course.Published{CourseID: "go", At: t1}))...)
	cases = append(cases, policyCases("archives a course", withIns2(publishedCourse()), archive("go"), "course-go",
		owned(course.Archived{CourseID: "go", At: t1}))...)
	cases = append(cases, policyCases("changes a course that does not exist", withIns2(people()), publish("nope"), "course-nope",
		map[domain.Actor]outcome{admin: courseNotFound, ins: courseNotFound, ins2: courseNotFound})...)

	self := func(ev ...domain.Event) map[domain.Actor]outcome {
		return map[domain.Actor]outcome{admin: {id: "ada", then: ev}, ada: {id: "ada", then: ev}, bob: learnerNotFound}
	}
	cases = append(cases, policyCases("enrolls ada", withIns2(publishedCourse()), enroll("ada", "go"), "learner-ada",
		self(learner.Enrolled{LearnerID: "ada", CourseID: "go", At: t1}))...)
	cases = append(cases, policyCases("withdraws ada", withIns2(adaEnrolled()), withdraw("ada", "go"), "learner-ada",
		self(learner.Withdrawn{LearnerID: "ada", CourseID: "go", At: t1}))...)
	cases = append(cases, policyCases("completes a module of ada's", withIns2(adaEnrolled()), complete("ada", "go", "m1"), "learner-ada",
		self(learner.ModuleCompleted{LearnerID: "ada", CourseID: "go", ModuleID: "m1", At: t1}))...)

	disclosed := func(p domain.Actor) outcome {
		return outcome{id: "ada", then: []domain.Event{learner.DisclosureRecorded{LearnerID: "ada", RecipientID: p.UserID,
			RecipientRole: string(p.Role), Record: learner.RecordHistory, Reason: "review", At: t1}}}
	}
	cases = append(cases, policyCases("records a disclosure of ada's history", withIns2(adaEnrolled()),
		recordDisclosure(commands.RecordDisclosure{LearnerID: "ada", Record: learner.RecordHistory, Reason: "review"}), "learner-ada",
		map[domain.Actor]outcome{admin: disclosed(admin), auditor: disclosed(auditor), ada: {id: "ada"}, bob: learnerNotFound})...)
	cases = append(cases, policyCases("records a disclosure of someone never registered", withIns2(people()),
		recordDisclosure(commands.RecordDisclosure{LearnerID: "nobody", Record: learner.RecordDashboard}), "learner-nobody",
		map[domain.Actor]outcome{admin: learnerNotFound, auditor: learnerNotFound, ada: learnerNotFound, bob: learnerNotFound})...)
	runCases(t, cases)
}
