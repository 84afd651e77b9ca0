// Package commands is EduTrack's write side: one type and one handler per command, each loading
// its aggregate, letting the domain decide and appending the result with optimistic
// concurrency. It knows no transport: the write HTTP API (writeapi) and any other client call
// the Handler's methods.
package commands

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/eventstore"
)

// Meta says who sent a command and how to recognise it when it is sent again.
type Meta struct {
	// CommandID is the same for every retry of one command (it comes from the Idempotency-Key);
	// it becomes the events' causation id and seeds their ids.
	CommandID string
	// Request, if not empty, fingerprints the request the command was made of (its method,
	// route and body). A retry with the same CommandID and another Request answers
	// ErrRequestMismatch instead of the first result.
	Request       string
	CorrelationID string
	RequestID     string
	// Actor is who sends the command: the acting user recorded in every event's metadata, and
	// the role that decides what they may do (policy.go). Over HTTP it is the caller of the
	// token, never anything the request says of itself; the zero Actor is EduTrack itself.
	Actor domain.Actor
}

// Result is a command's answer: the stream version and the global position of its last event
// (or the stream's current ones, when the command changed nothing).
type Result struct {
	ID       string `json:"id"`
	Version  uint64 `json:"version"`
	Position uint64 `json:"position"`
	// Changed is false when the command was a no-op or a replay of an earlier one.
	Changed bool `json:"-"`
}

// Events lists every domain event type, for the codec.
func Events() []domain.Event {
	return slices.Concat(user.Events(), course.Events(), learner.Events())
}

// NewCodec returns the codec for every EduTrack event.
func NewCodec() (*eventstore.Codec, error) { return eventstore.NewCodec(Events()...) }

// Handler executes commands. It is safe for concurrent use.
type Handler struct {
	now        func() time.Time
	files      ModuleFiles
	fileLimits course.FileLimits
	users      *repository[*user.User]
	courses    *repository[*course.Course]
	learners   *repository[*learner.Learner]
}

// Options tune a Handler.
type Options struct {
	// CacheSize caps the aggregates of each kind kept in memory (default 100,000).
	CacheSize int
	// Files keeps the bytes of module files; without it the file commands fail.
	Files ModuleFiles
	// FileLimits are the module files accepted; required with Files.
	FileLimits course.FileLimits
}

// New returns a Handler over store. now gives the time events record.
func New(store Store, now func() time.Time, opts Options) (*Handler, error) {
	if store == nil || now == nil {
		return nil, errors.New("commands: store and clock are required")
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 100_000
	}
	if err := fileOptions(opts); err != nil {
		return nil, err
	}
	codec, err := NewCodec()
	if err != nil {
		return nil, err
	}
	return &Handler{
		now:        now,
		files:      opts.Files,
		fileLimits: opts.FileLimits,
		users:      newRepository(user.StreamPrefix, user.New, store, codec, opts.CacheSize),
		courses:    newRepository(course.StreamPrefix, course.New, store, codec, opts.CacheSize),
		learners:   newRepository(learner.StreamPrefix, learner.New, store, codec, opts.CacheSize),
	}, nil
}

func result(id string, res eventstore.AppendResult, changed bool, err error) (Result, error) {
	if err != nil {
		return Result{}, err
	}
	return Result{ID: id, Version: res.Version, Position: res.Position, Changed: changed}, nil
}

// The lock order is learner, then course, then user: a command holds its own aggregate while it
// reads the ones its rules need, and nothing takes them the other way round.

// RegisterUser registers a person.
type RegisterUser struct {
	ID    string
	Name  string
	Email string
	Role  string
}

// RegisterUser executes c.
func (h *Handler) RegisterUser(ctx context.Context, m Meta, c RegisterUser) (Result, error) {
	if err := m.mayAdminister(); err != nil {
		return Result{}, err
	}
	role, err := user.ParseRole(c.Role)
	if err != nil {
		return Result{}, err
	}
	return h.changeUser(ctx, m, c.ID, func(u *user.User) error { return u.Register(c.Name, c.Email, role, h.now()) })
}

// UpdateUser changes a person's name and email; nil keeps the current value.
type UpdateUser struct {
	ID    string
	Name  *string
	Email *string
}

// UpdateUser executes c.
func (h *Handler) UpdateUser(ctx context.Context, m Meta, c UpdateUser) (Result, error) {
	if err := m.mayAdminister(); err != nil {
		return Result{}, err
	}
	return h.changeUser(ctx, m, c.ID, func(u *user.User) error {
		if !u.Registered() {
			return user.ErrNotFound
		}
		at := h.now()
		if c.Name != nil {
			if err := u.ChangeName(*c.Name, at); err != nil {
				return err
			}
		}
		if c.Email != nil {
			return u.ChangeEmail(*c.Email, at)
		}
		return nil
	})
}

func (h *Handler) changeUser(ctx context.Context, m Meta, id string, decide func(*user.User) error) (Result, error) {
	res, changed, err := h.users.update(ctx, id, m, change[*user.User]{decide: decide})
	return result(id, res, changed, err)
}

// CreateCourse creates a draft course.
type CreateCourse struct {
	ID           string
	Title        string
	Description  string
	Category     string
	Level        string
	InstructorID string
}

// CreateCourse executes c.
func (h *Handler) CreateCourse(ctx context.Context, m Meta, c CreateCourse) (Result, error) {
	if err := m.mayCreateCourseFor(c.InstructorID); err != nil {
		return Result{}, err
	}
	level, err := course.ParseLevel(c.Level)
	if err != nil {
		return Result{}, err
	}
	d := course.Details{Title: c.Title, Description: c.Description, Category: c.Category, Level: level}
	return h.createCourse(ctx, m, c.ID, func(co *course.Course) error {
		if co.Exists() {
			return course.ErrAlreadyExists
		}
		return h.users.view(ctx, c.InstructorID, func(u *user.User) error { return co.Create(d, u, h.now()) })
	})
}

// UpdateCourseDetails changes some of a course's details.
type UpdateCourseDetails struct {
	ID    string
	Patch course.DetailsPatch
}

// UpdateCourseDetails executes c.
func (h *Handler) UpdateCourseDetails(ctx context.Context, m Meta, c UpdateCourseDetails) (Result, error) {
	return h.changeCourse(ctx, m, c.ID, func(co *course.Course) error { return co.UpdateDetails(c.Patch, h.now()) })
}

// AddModule appends a module to a course.
type AddModule struct {
	CourseID string
	ModuleID string
	Title    string
}

// AddModule executes c. The result's ID is the module's.
func (h *Handler) AddModule(ctx context.Context, m Meta, c AddModule) (Result, error) {
	res, err := h.changeCourse(ctx, m, c.CourseID, func(co *course.Course) error { return co.AddModule(c.ModuleID, c.Title, h.now()) })
	res.ID = c.ModuleID
	return res, err
}

// PublishCourse makes a draft course visible in the catalog.
type PublishCourse struct{ ID string }

// PublishCourse executes c.
func (h *Handler) PublishCourse(ctx context.Context, m Meta, c PublishCourse) (Result, error) {
	return h.changeCourse(ctx, m, c.ID, func(co *course.Course) error { return co.Publish(h.now()) })
}

// ArchiveCourse closes a course to new enrollments.
type ArchiveCourse struct{ ID string }

// ArchiveCourse executes c.
func (h *Handler) ArchiveCourse(ctx context.Context, m Meta, c ArchiveCourse) (Result, error) {
	return h.changeCourse(ctx, m, c.ID, func(co *course.Course) error { return co.Archive(h.now()) })
}

// changeCourse lets decide change course id, if m may change it.
func (h *Handler) changeCourse(ctx context.Context, m Meta, id string, decide func(*course.Course) error) (Result, error) {
	res, changed, err := h.courses.update(ctx, id, m, change[*course.Course]{authorize: m.mayChange, decide: decide})
	return result(id, res, changed, err)
}

func (h *Handler) createCourse(ctx context.Context, m Meta, id string, decide func(*course.Course) error) (Result, error) {
	res, changed, err := h.courses.update(ctx, id, m, change[*course.Course]{decide: decide})
	return result(id, res, changed, err)
}

// EnrollStudent enrolls a learner in a published course, or resumes a withdrawn enrollment.
type EnrollStudent struct {
	CourseID  string
	LearnerID string
}

// EnrollStudent executes c.
func (h *Handler) EnrollStudent(ctx context.Context, m Meta, c EnrollStudent) (Result, error) {
	if err := m.mayActFor(c.LearnerID); err != nil {
		return Result{}, err
	}
	return h.changeLearner(ctx, m, c.LearnerID, h.mayReadCourse(ctx, m, c.CourseID), func(l *learner.Learner) error {
		return h.courses.view(ctx, c.CourseID, func(co *course.Course) error {
			return h.users.view(ctx, c.LearnerID, func(u *user.User) error { return l.Enroll(u, co, h.now()) })
		})
	}, nil)
}

// WithdrawEnrollment withdraws a learner from a course; re-enrolling later resumes it.
type WithdrawEnrollment struct {
	CourseID  string
	LearnerID string
}

// WithdrawEnrollment executes c.
func (h *Handler) WithdrawEnrollment(ctx context.Context, m Meta, c WithdrawEnrollment) (Result, error) {
	if err := m.mayActFor(c.LearnerID); err != nil {
		return Result{}, err
	}
	return h.changeLearner(ctx, m, c.LearnerID, h.mayReadCourse(ctx, m, c.CourseID), func(l *learner.Learner) error {
		return h.courses.view(ctx, c.CourseID, func(co *course.Course) error {
			if !co.Exists() {
				return learner.ErrCourseNotFound.WithField("courseId")
			}
			return h.users.view(ctx, c.LearnerID, func(u *user.User) error {
				if !u.Registered() || u.Role() != domain.Learner {
					return learner.ErrLearnerNotFound.WithField("learnerId")
				}
				return l.Withdraw(c.CourseID, h.now())
			})
		})
	}, nil)
}

// CompleteModule records that a learner completed a module of a course they are enrolled in.
type CompleteModule struct {
	LearnerID string
	CourseID  string
	ModuleID  string
}

// CompleteModuleResult adds whether the learner has now completed the whole course.
type CompleteModuleResult struct {
	Result
	CourseCompleted bool `json:"courseCompleted"`
}

// CompleteModule executes c.
func (h *Handler) CompleteModule(ctx context.Context, m Meta, c CompleteModule) (CompleteModuleResult, error) {
	if err := m.mayActFor(c.LearnerID); err != nil {
		return CompleteModuleResult{}, err
	}
	var completed bool
	res, err := h.changeLearner(ctx, m, c.LearnerID, h.mayReadCourse(ctx, m, c.CourseID), func(l *learner.Learner) error {
		return h.courses.view(ctx, c.CourseID, func(co *course.Course) error {
			return h.users.view(ctx, c.LearnerID, func(u *user.User) error {
				if !u.Registered() || u.Role() != domain.Learner {
					return learner.ErrLearnerNotFound.WithField("learnerId")
				}
				_, err := l.CompleteModule(co, c.ModuleID, h.now())
				return err
			})
		})
	}, func(l *learner.Learner) {
		en, ok := l.Enrollment(c.CourseID)
		completed = ok && en.Status == learner.StatusCompleted
	})
	return CompleteModuleResult{Result: res, CourseCompleted: completed}, err
}

func (h *Handler) changeLearner(ctx context.Context, m Meta, id string, authorize, decide func(*learner.Learner) error, inspect func(*learner.Learner)) (Result, error) {
	res, changed, err := h.learners.update(ctx, id, m, change[*learner.Learner]{authorize: authorize, decide: decide, inspect: inspect})
	return result(id, res, changed, err)
}

// mayReadCourse authorizes a learner's command about courseID: m must be allowed to see it.
func (h *Handler) mayReadCourse(ctx context.Context, m Meta, courseID string) func(*learner.Learner) error {
	return func(*learner.Learner) error { return h.courses.view(ctx, courseID, m.mayRead) }
}

// RecordDisclosure records that the caller, who is not the learner, read the learner's
// Record; the caller is the recipient. It is sent by the read API before it answers.
type RecordDisclosure struct {
	LearnerID string
	Record    learner.Record
	Reason    string
}

// RecordDisclosure executes c. It returns learner.ErrLearnerNotFound for an id that is no
// registered user.
func (h *Handler) RecordDisclosure(ctx context.Context, m Meta, c RecordDisclosure) (Result, error) {
	if err := m.mayDisclose(c.LearnerID); err != nil {
		return Result{}, err
	}
	d := learner.Disclosure{RecipientID: m.Actor.UserID, RecipientRole: string(m.Actor.Role), Record: c.Record, Reason: c.Reason}
	return h.changeLearner(ctx, m, c.LearnerID, nil, func(l *learner.Learner) error {
		return h.users.view(ctx, c.LearnerID, func(u *user.User) error {
			if !u.Registered() {
				return learner.ErrLearnerNotFound.WithField("learnerId")
			}
			return l.RecordDisclosure(d, h.now())
		})
	}, nil)
}

// IssueCertificate records the certificate of a course the learner completed, once its PDF is
// stored. The certificate job sends it, as EduTrack itself, with the job's id as the command
// id, so a retried job appends nothing twice.
type IssueCertificate struct {
	LearnerID     string
	CourseID      string
	CertificateID string
	BlobKey       string
	SHA256        string
}

// IssueCertificate executes c. Only EduTrack itself issues certificates; any caller answers
// ErrForbidden.
func (h *Handler) IssueCertificate(ctx context.Context, m Meta, c IssueCertificate) (Result, error) {
	if !m.Actor.System() {
		return Result{}, ErrForbidden
	}
	cert := learner.Certificate{ID: c.CertificateID, BlobKey: c.BlobKey, SHA256: c.SHA256}
	return h.changeLearner(ctx, m, c.LearnerID, nil, func(l *learner.Learner) error {
		return l.IssueCertificate(c.CourseID, cert, h.now())
	}, nil)
}
