// Package learner owns the Learner aggregate: one stream per learner holding their enrollments
// and their progress through each course.
package learner

import (
	"cmp"
	"slices"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/user"
)

// EnrollmentStatus is where a learner stands in one course.
type EnrollmentStatus string

const (
	StatusActive    EnrollmentStatus = "active"
	StatusCompleted EnrollmentStatus = "completed"
	StatusWithdrawn EnrollmentStatus = "withdrawn"
)

var (
	// ErrLearnerNotFound is returned by Enroll (on field "learnerId") when the person is not a
	// registered user or is not this learner.
	ErrLearnerNotFound = domain.Errorf(domain.NotFound, "learner not found")
	// ErrNotALearner is returned by Enroll (on field "learnerId") when the user's role is not
	// learner.
	ErrNotALearner = domain.Errorf(domain.Conflict, "user is not a learner")
	// ErrCourseNotFound is returned (on field "courseId") when the course was never created.
	ErrCourseNotFound = domain.Errorf(domain.NotFound, "course not found")
	// ErrCourseNotPublished is returned by Enroll when the course is still a draft.
	ErrCourseNotPublished = domain.Errorf(domain.Conflict, "course is not published")
	// ErrCourseArchived is returned by Enroll when the course is archived and the learner is not
	// already enrolled.
	ErrCourseArchived = domain.Errorf(domain.Conflict, "course is archived and takes no new enrollments")
	// ErrNotEnrolled is returned when the learner never enrolled in the course or withdrew from it.
	ErrNotEnrolled = domain.Errorf(domain.Conflict, "learner is not enrolled in this course")
	// ErrModuleNotFound is returned by CompleteModule (on field "moduleId") when the course has no
	// such module.
	ErrModuleNotFound = domain.Errorf(domain.NotFound, "module not found")
	// ErrCourseAlreadyCompleted is returned by Withdraw when the learner already completed the
	// course.
	ErrCourseAlreadyCompleted = domain.Errorf(domain.Conflict, "course is already completed")
)

// Enrollment is a learner's standing in one course.
type Enrollment struct {
	CourseID string
	Status   EnrollmentStatus
	// CompletedModules holds module ids in the order the learner completed them.
	CompletedModules []string
	// EnrolledAt is when the learner first enrolled; resuming after a withdrawal keeps it.
	EnrolledAt time.Time
	// CompletedAt is when the learner completed the course, or the zero time.
	CompletedAt time.Time
	// LastActivityAt is when this enrollment last changed.
	LastActivityAt time.Time
	// CertificateID names the certificate issued for the completion, or is empty.
	CertificateID string
}

// enrollment keeps a set beside the ordered list so that checking a module is O(1) however long
// the learner's history is.
type enrollment struct {
	Enrollment
	completed map[string]struct{}
}

func (e *enrollment) snapshot() Enrollment {
	s := e.Enrollment
	s.CompletedModules = slices.Clone(e.CompletedModules)
	return s
}

// Learner is one learner's enrollments and progress. Build it with New, replay its history with
// Apply and change it with the command methods.
type Learner struct {
	id          string
	enrollments map[string]*enrollment // by course id

	domain.Recorder
}

// New returns an empty Learner for id, the id of the user who learns, with nothing recorded yet.
func New(id string) *Learner { return &Learner{id: id} }

func (l *Learner) ID() string { return l.id }

// Enrollment returns a copy of the learner's enrollment in courseID, and whether there is one.
func (l *Learner) Enrollment(courseID string) (Enrollment, bool) {
	en, ok := l.enrollments[courseID]
	if !ok {
		return Enrollment{}, false
	}
	return en.snapshot(), true
}

// Enrollments returns copies of every enrollment, by EnrolledAt and then CourseID.
func (l *Learner) Enrollments() []Enrollment {
	out := make([]Enrollment, 0, len(l.enrollments))
	for _, en := range l.enrollments {
		out = append(out, en.snapshot())
	}
	slices.SortFunc(out, func(a, b Enrollment) int {
		if c := a.EnrolledAt.Compare(b.EnrolledAt); c != 0 {
			return c
		}
		return cmp.Compare(a.CourseID, b.CourseID)
	})
	return out
}

// Enroll enrolls person, who must be this learner, in a published course. Enrolling again while
// active or after completing changes nothing, even in an archived course; enrolling after a
// withdrawal resumes the earlier progress. It returns ErrLearnerNotFound, ErrNotALearner,
// ErrCourseNotFound, ErrCourseNotPublished or ErrCourseArchived.
func (l *Learner) Enroll(person *user.User, c *course.Course, at time.Time) error {
	if person == nil || !person.Registered() || person.ID() != l.id {
		return ErrLearnerNotFound.WithField("learnerId")
	}
	if person.Role() != domain.Learner {
		return ErrNotALearner.WithField("learnerId")
	}
	if c == nil || !c.Exists() {
		return ErrCourseNotFound.WithField("courseId")
	}
	en, enrolled := l.enrollments[c.ID()]
	if enrolled && en.Status != StatusWithdrawn {
		return nil
	}
	switch c.Status() {
	case course.StatusDraft:
		return ErrCourseNotPublished
	case course.StatusArchived:
		return ErrCourseArchived
	}
	l.record(Enrolled{LearnerID: l.id, CourseID: c.ID(), Resumed: enrolled, At: at})
	return nil
}

// Withdraw ends the learner's active enrollment in courseID, keeping its progress for a later
// Enroll. Withdrawing again changes nothing. It returns ErrNotEnrolled or
// ErrCourseAlreadyCompleted.
func (l *Learner) Withdraw(courseID string, at time.Time) error {
	en, ok := l.enrollments[courseID]
	if !ok {
		return ErrNotEnrolled
	}
	switch en.Status {
	case StatusWithdrawn:
		return nil
	case StatusCompleted:
		return ErrCourseAlreadyCompleted
	}
	l.record(Withdrawn{LearnerID: l.id, CourseID: courseID, At: at})
	return nil
}

// CompleteModule marks moduleID of course c done, and completes the course once every module it
// has now is done. A completed enrollment may still complete a module added to the course later.
// Completing a completed module changes nothing. completed reports whether the enrollment is
// completed after the call. It returns ErrCourseNotFound, ErrModuleNotFound or ErrNotEnrolled.
func (l *Learner) CompleteModule(c *course.Course, moduleID string, at time.Time) (completed bool, err error) {
	if c == nil || !c.Exists() {
		return false, ErrCourseNotFound.WithField("courseId")
	}
	if !c.HasModule(moduleID) {
		return false, ErrModuleNotFound.WithField("moduleId")
	}
	en, ok := l.enrollments[c.ID()]
	if !ok || en.Status == StatusWithdrawn {
		return false, ErrNotEnrolled
	}
	if _, done := en.completed[moduleID]; done {
		return en.Status == StatusCompleted, nil
	}
	l.record(ModuleCompleted{LearnerID: l.id, CourseID: c.ID(), ModuleID: moduleID, At: at})
	if en.Status == StatusActive && completedAll(en, c) {
		l.record(CourseCompleted{LearnerID: l.id, CourseID: c.ID(), At: at})
	}
	return en.Status == StatusCompleted, nil
}

// completedAll reports whether en has completed every module c has. Modules are never removed, so
// fewer completions than modules settles it without looking at each one.
func completedAll(en *enrollment, c *course.Course) bool {
	if len(en.completed) < c.ModuleCount() {
		return false
	}
	for _, m := range c.Modules() {
		if _, ok := en.completed[m.ID]; !ok {
			return false
		}
	}
	return true
}

// Apply applies one recorded event, as when replaying the stream. Unknown events, and events about
// an enrollment that does not exist, are ignored.
func (l *Learner) Apply(e domain.Event) {
	switch e := e.(type) {
	case Enrolled:
		en, ok := l.enrollments[e.CourseID]
		if !ok {
			if l.enrollments == nil {
				l.enrollments = make(map[string]*enrollment)
			}
			en = &enrollment{
				Enrollment: Enrollment{CourseID: e.CourseID, EnrolledAt: e.At},
				completed:  make(map[string]struct{}),
			}
			l.enrollments[e.CourseID] = en
		}
		en.Status = StatusActive
		en.LastActivityAt = e.At
	case *Enrolled:
		if e != nil {
			l.Apply(*e)
		}
	case Withdrawn:
		if en, ok := l.enrollments[e.CourseID]; ok {
			en.Status = StatusWithdrawn
			en.LastActivityAt = e.At
		}
	case *Withdrawn:
		if e != nil {
			l.Apply(*e)
		}
	case ModuleCompleted:
		en, ok := l.enrollments[e.CourseID]
		if !ok {
			return
		}
		if _, done := en.completed[e.ModuleID]; !done {
			en.completed[e.ModuleID] = struct{}{}
			en.CompletedModules = append(en.CompletedModules, e.ModuleID)
		}
		en.LastActivityAt = e.At
	case *ModuleCompleted:
		if e != nil {
			l.Apply(*e)
		}
	case CourseCompleted:
		if en, ok := l.enrollments[e.CourseID]; ok {
			en.Status = StatusCompleted
			en.CompletedAt = e.At
			en.LastActivityAt = e.At
		}
	case *CourseCompleted:
		if e != nil {
			l.Apply(*e)
		}
	case CertificateIssued:
		if en, ok := l.enrollments[e.CourseID]; ok {
			en.CertificateID = e.CertificateID
		}
	case *CertificateIssued:
		if e != nil {
			l.Apply(*e)
		}
	}
}

func (l *Learner) record(e domain.Event) { domain.Record(&l.Recorder, l.Apply, e) }
