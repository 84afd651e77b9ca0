package commands_test

import (
	"testing"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
)

// A command about something the caller may not read answers as if it did not exist, so that
// the write side gives away nothing the read side hides. A learner may not read a draft: the
// course is its instructor's work in progress.
func TestHiddenStaysHiddenOnTheWriteSide(t *testing.T) {
	withBob := func(given []action) []action {
		return append(given, registered("ins2", "instructor"), registered("bob", "learner"))
	}
	draftNotFound := outcome{err: learner.ErrCourseNotFound, kind: domain.NotFound, field: "courseId"}
	learnerNotFound := outcome{err: learner.ErrLearnerNotFound, kind: domain.NotFound, field: "learnerId"}
	var cases []commandCase
	cases = append(cases, policyCases("enrolls ada in a draft", withBob(draftWithModules()), enroll("ada", "go"), "learner-ada",
		map[domain.Actor]outcome{
			admin: {err: learner.ErrCourseNotPublished, kind: domain.Conflict},
			ada:   draftNotFound,
			bob:   learnerNotFound,
		})...)
	cases = append(cases, policyCases("enrolls ada in a course that does not exist", withBob(draftWithModules()), enroll("ada", "nope"),
		"learner-ada", map[domain.Actor]outcome{admin: draftNotFound, ada: draftNotFound, bob: learnerNotFound})...)
	// Whether the module exists must not show either.
	for _, module := range []string{"m1", "m9"} {
		cases = append(cases, policyCases("completes module "+module+" of a draft", withBob(draftWithModules()),
			complete("ada", "go", module), "learner-ada", map[domain.Actor]outcome{ada: draftNotFound, bob: learnerNotFound,
				admin: map[string]outcome{
					"m1": {err: learner.ErrNotEnrolled, kind: domain.Conflict},
					"m9": {err: learner.ErrModuleNotFound, kind: domain.NotFound, field: "moduleId"},
				}[module]})...)
	}
	cases = append(cases, policyCases("withdraws ada from a draft", withBob(draftWithModules()), withdraw("ada", "go"), "learner-ada",
		map[domain.Actor]outcome{admin: {err: learner.ErrNotEnrolled, kind: domain.Conflict}, ada: draftNotFound, bob: learnerNotFound})...)
	runCases(t, cases)
}
