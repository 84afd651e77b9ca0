package commands

import (
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
)

// Who may send which command. The HTTP routes refuse a role that may never send a command
// before its body is read; the checks here are the ones that need the aggregate or the
// command's ids, and each Handler method makes them, so no transport can skip them. What
// belongs to another person answers not found, exactly like what does not exist, so that a
// caller cannot probe for other people's ids.

// ErrForbidden is returned when the caller's role may never send the command.
var ErrForbidden = domain.Errorf(domain.Forbidden, "your role may not do this")

// errOthersCourse is returned when an instructor names another instructor in a new course.
var errOthersCourse = domain.Errorf(domain.Forbidden, "an instructor creates courses with themselves as instructor").WithField("instructorId")

// mayAdminister allows what only admins do, such as managing users.
func (m Meta) mayAdminister() error {
	if m.Actor.System() || m.Actor.Role == domain.Admin {
		return nil
	}
	return ErrForbidden
}

// mayActFor allows a learner to act for themselves, and admins for anyone.
func (m Meta) mayActFor(learnerID string) error {
	switch {
	case m.Actor.System() || m.Actor.Role == domain.Admin:
		return nil
	case m.Actor.Role == domain.Learner && learnerID == m.Actor.UserID:
		return nil
	case m.Actor.Role == domain.Learner:
		return learner.ErrLearnerNotFound.WithField("learnerId")
	}
	return ErrForbidden
}

// mayCreateCourseFor allows an instructor to create courses they teach, and admins any course.
func (m Meta) mayCreateCourseFor(instructorID string) error {
	switch {
	case m.Actor.System() || m.Actor.Role == domain.Admin:
		return nil
	case m.Actor.Role == domain.Instructor && instructorID == m.Actor.UserID:
		return nil
	case m.Actor.Role == domain.Instructor:
		return errOthersCourse
	}
	return ErrForbidden
}

// mayChange allows an instructor to change the courses they teach, and admins any course.
func (m Meta) mayChange(co *course.Course) error {
	switch {
	case m.Actor.System() || m.Actor.Role == domain.Admin:
		return nil
	case m.Actor.Role == domain.Instructor && co.Exists() && co.InstructorID() == m.Actor.UserID:
		return nil
	case m.Actor.Role == domain.Instructor:
		return course.ErrNotFound
	}
	return ErrForbidden
}

// mayRead lets a learner's command see a course only as the read side shows it: a draft is its
// instructor's work in progress, so to anyone else it answers not found, exactly like a course
// that does not exist, whatever rule would refuse the command next. Admins see everything.
func (m Meta) mayRead(co *course.Course) error {
	switch {
	case m.Actor.System() || m.Actor.Role == domain.Admin:
		return nil
	case co.Status() == course.StatusDraft && !(m.Actor.Role == domain.Instructor && co.InstructorID() == m.Actor.UserID):
		return learner.ErrCourseNotFound.WithField("courseId")
	}
	return nil
}

// mayDisclose allows recording the disclosures of the roles that read other people's records;
// a learner's read of their own records is let through and records nothing.
func (m Meta) mayDisclose(learnerID string) error {
	switch {
	case m.Actor.System() || m.Actor.Role == domain.Admin || m.Actor.Role == domain.Auditor:
		return nil
	case m.Actor.Role == domain.Learner && learnerID == m.Actor.UserID:
		return nil
	case m.Actor.Role == domain.Learner:
		return learner.ErrLearnerNotFound.WithField("learnerId")
	}
	return ErrForbidden
}
