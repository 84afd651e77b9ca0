// Package writeapi is EduTrack's write HTTP API: it reads each command from a request, with the
// caller the authenticator put in its context, and answers the command's result or its error as
// application/problem+json. The commands package decides; this package only translates.
package writeapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/problem"
)

// MaxBodyBytes caps a command's JSON body.
const MaxBodyBytes = 1 << 20

// API serves the write HTTP API.
type API struct {
	h    *commands.Handler
	log  *slog.Logger
	keys *keyIndex
}

// rememberedKeys is how many recent Idempotency-Keys the API binds to their requests across
// routes (see idempotency.go).
const rememberedKeys = 100_000

// New returns the write API over h.
func New(h *commands.Handler, log *slog.Logger) (*API, error) {
	if h == nil || log == nil {
		return nil, errors.New("writeapi: handler and logger are required")
	}
	return &API{h: h, log: log, keys: newKeyIndex(rememberedKeys)}, nil
}

// Routes mounts the command routes on r, behind an authenticator that puts the caller in each
// request's context. Each route names the roles that may ever send it, so the others get 403
// before their body is read; which objects a caller may touch the command handler decides.
func (a *API) Routes(r chi.Router) {
	admins := auth.Restrict(a.log, domain.Admin)
	teachers := auth.Restrict(a.log, domain.Instructor, domain.Admin)
	learners := auth.Restrict(a.log, domain.Learner, domain.Admin)
	r.With(admins).Post("/v1/users", a.handle(a.registerUser))
	r.With(admins).Patch("/v1/users/{id}", a.handle(a.updateUser))
	r.With(teachers).Post("/v1/courses", a.handle(a.createCourse))
	r.With(teachers).Patch("/v1/courses/{id}", a.handle(a.updateCourse))
	r.With(teachers).Post("/v1/courses/{id}/modules", a.handle(a.addModule))
	r.With(teachers).Post("/v1/courses/{id}/publish", a.handle(a.publishCourse))
	r.With(teachers).Post("/v1/courses/{id}/archive", a.handle(a.archiveCourse))
	r.With(teachers).Post("/v1/courses/{id}/modules/{moduleId}/files", a.handle(a.startFileUpload))
	r.With(teachers).Post("/v1/courses/{id}/modules/{moduleId}/files/{fileId}/complete", a.handle(a.completeFileUpload))
	r.With(learners).Post("/v1/courses/{id}/enrollments", a.handle(a.enroll))
	r.With(learners).Delete("/v1/courses/{id}/enrollments/{learnerId}", a.handle(a.withdraw))
	r.With(learners).Post("/v1/learners/{learnerId}/courses/{courseId}/modules/{moduleId}/complete", a.handle(a.completeModule))
}

// handle adapts a handler that returns its status and body, or an error.
func (a *API) handle(fn func(w http.ResponseWriter, r *http.Request, m commands.Meta) (int, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m, err := meta(r)
		if err != nil {
			problem.Write(w, r, a.log, err)
			return
		}
		key := r.Header.Get("Idempotency-Key")
		if key != "" {
			if err := a.keys.check(keyOf(m, key), m.Request); err != nil {
				problem.Write(w, r, a.log, err)
				return
			}
		}
		status, body, err := fn(w, r, m)
		if err = KeyError(err); err != nil {
			problem.Write(w, r, a.log, err)
			return
		}
		if key != "" {
			a.keys.add(keyOf(m, key), m.Request)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(body)
	}
}

// commandNamespace derives command ids from idempotency keys.
var commandNamespace = uuid.MustParse("0c3b7f0e-51a6-4a8e-a7f4-93d2a0f4c6b1")

// errNoCaller means a route was mounted without the authenticator; it fails closed as a 500.
var errNoCaller = errors.New("writeapi: no caller in the request context; is the route behind the authenticator?")

// meta reads who sent the request and which command it is. The caller comes from the token the
// authenticator checked, never from a header. The same Idempotency-Key on the same route from
// the same user is the same command.
func meta(r *http.Request) (commands.Meta, error) {
	caller, ok := auth.FromContext(r.Context())
	if !ok {
		return commands.Meta{}, errNoCaller
	}
	m := commands.Meta{
		RequestID:     r.Header.Get("X-Request-Id"),
		CorrelationID: r.Header.Get("X-Correlation-Id"),
		Actor:         caller,
	}
	// These land in every event's metadata, forever: keep them short.
	for _, h := range []string{"X-Request-Id", "X-Correlation-Id", "Idempotency-Key"} {
		if len(r.Header.Get(h)) > maxHeaderLen {
			return m, problem.New(http.StatusBadRequest, h, fmt.Sprintf("must be at most %d bytes", maxHeaderLen))
		}
	}
	if key := r.Header.Get("Idempotency-Key"); key != "" {
		m.CommandID = commandIDOf(r.Method+" "+r.URL.Path, m.Actor.UserID, key)
		var err error
		if m.Request, err = fingerprint(r); err != nil {
			return m, problem.New(http.StatusBadRequest, "", "the request body could not be read")
		}
	} else {
		m.CommandID = uuid.NewString()
	}
	if m.RequestID == "" {
		m.RequestID = m.CommandID
	}
	if m.CorrelationID == "" {
		m.CorrelationID = m.RequestID
	}
	return m, nil
}

// maxHeaderLen caps the request headers that commands record.
const maxHeaderLen = 128

// decode reads a command's JSON body into v.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	return problem.DecodeJSON(w, r, v, MaxBodyBytes)
}

// pathID reads a path id; an id that cannot exist is answered as not found.
func pathID(r *http.Request, name, what string) (string, error) {
	id := chi.URLParam(r, name)
	if !domain.ValidID(id) {
		return "", problem.New(http.StatusNotFound, name, what+" not found")
	}
	return id, nil
}

// newID checks a client-supplied id, or makes one: from the command id when the request is
// idempotent (so a retry names the same object), else at random.
func newID(given *string, field string, m commands.Meta) (string, error) {
	if given != nil {
		if !domain.ValidID(*given) {
			return "", problem.New(http.StatusBadRequest, field, "must match [a-z0-9-]{1,64}")
		}
		return *given, nil
	}
	return m.CommandID, nil
}

func required(field string, v *string) (string, error) {
	if v == nil {
		return "", problem.New(http.StatusBadRequest, field, "is required")
	}
	return *v, nil
}

// created answers 201 with the Location of what the command created, or 200 for a command
// that created nothing (a retry, or what existed already).
func created(w http.ResponseWriter, res commands.Result, location string) int {
	if !res.Changed {
		return http.StatusOK
	}
	w.Header().Set("Location", location)
	return http.StatusCreated
}

func (a *API) registerUser(w http.ResponseWriter, r *http.Request, m commands.Meta) (int, any, error) {
	var body struct {
		ID    *string `json:"id"`
		Name  *string `json:"name"`
		Email *string `json:"email"`
		Role  *string `json:"role"`
	}
	if err := decode(w, r, &body); err != nil {
		return 0, nil, err
	}
	c := commands.RegisterUser{}
	var err error
	if c.ID, err = newID(body.ID, "id", m); err != nil {
		return 0, nil, err
	}
	for _, f := range []struct {
		name string
		src  *string
		dst  *string
	}{{"name", body.Name, &c.Name}, {"email", body.Email, &c.Email}, {"role", body.Role, &c.Role}} {
		if *f.dst, err = required(f.name, f.src); err != nil {
			return 0, nil, err
		}
	}
	res, err := a.h.RegisterUser(r.Context(), m, c)
	return created(w, res, "/v1/users/"+res.ID), res, err
}

func (a *API) updateUser(w http.ResponseWriter, r *http.Request, m commands.Meta) (int, any, error) {
	id, err := pathID(r, "id", "user")
	if err != nil {
		return 0, nil, err
	}
	var body struct {
		Name  *string `json:"name"`
		Email *string `json:"email"`
	}
	if err := decode(w, r, &body); err != nil {
		return 0, nil, err
	}
	res, err := a.h.UpdateUser(r.Context(), m, commands.UpdateUser{ID: id, Name: body.Name, Email: body.Email})
	return http.StatusOK, res, err
}

func (a *API) createCourse(w http.ResponseWriter, r *http.Request, m commands.Meta) (int, any, error) {
	var body struct {
		ID           *string `json:"id"`
		Title        *string `json:"title"`
		Description  *string `json:"description"`
		Category     *string `json:"category"`
		Level        *string `json:"level"`
		InstructorID *string `json:"instructorId"`
	}
	if err := decode(w, r, &body); err != nil {
		return 0, nil, err
	}
	c := commands.CreateCourse{}
	var err error
	if c.ID, err = newID(body.ID, "id", m); err != nil {
		return 0, nil, err
	}
	if body.Description != nil {
		c.Description = *body.Description
	}
	for _, f := range []struct {
		name string
		src  *string
		dst  *string
	}{{"title", body.Title, &c.Title}, {"category", body.Category, &c.Category}, {"level", body.Level, &c.Level},
		{"instructorId", body.InstructorID, &c.InstructorID}} {
		if *f.dst, err = required(f.name, f.src); err != nil {
			return 0, nil, err
		}
	}
	if !domain.ValidID(c.InstructorID) {
		return 0, nil, problem.New(http.StatusNotFound, "instructorId", "instructor not found")
	}
	res, err := a.h.CreateCourse(r.Context(), m, c)
	return created(w, res, "/v1/courses/"+res.ID), res, err
}

func (a *API) updateCourse(w http.ResponseWriter, r *http.Request, m commands.Meta) (int, any, error) {
	id, err := pathID(r, "id", "course")
	if err != nil {
		return 0, nil, err
	}
	var body struct {
		Title       *string `json:"title"`
		Description *string `json:"description"`
		Category    *string `json:"category"`
		Level       *string `json:"level"`
	}
	if err := decode(w, r, &body); err != nil {
		return 0, nil, err
	}
	p := course.DetailsPatch{Title: body.Title, Description: body.Description, Category: body.Category}
	if body.Level != nil {
		level, err := course.ParseLevel(*body.Level)
		if err != nil {
			return 0, nil, err
		}
		p.Level = &level
	}
	res, err := a.h.UpdateCourseDetails(r.Context(), m, commands.UpdateCourseDetails{ID: id, Patch: p})
	return http.StatusOK, res, err
}

func (a *API) addModule(w http.ResponseWriter, r *http.Request, m commands.Meta) (int, any, error) {
	courseID, err := pathID(r, "id", "course")
	if err != nil {
		return 0, nil, err
	}
	var body struct {
		ID    *string `json:"id"`
		Title *string `json:"title"`
	}
	if err := decode(w, r, &body); err != nil {
		return 0, nil, err
	}
	c := commands.AddModule{CourseID: courseID}
	if c.ModuleID, err = newID(body.ID, "id", m); err != nil {
		return 0, nil, err
	}
	if c.Title, err = required("title", body.Title); err != nil {
		return 0, nil, err
	}
	res, err := a.h.AddModule(r.Context(), m, c)
	return created(w, res, "/v1/courses/"+c.CourseID), res, err
}

func (a *API) publishCourse(w http.ResponseWriter, r *http.Request, m commands.Meta) (int, any, error) {
	if err := problem.NoBody(r); err != nil {
		return 0, nil, err
	}
	id, err := pathID(r, "id", "course")
	if err != nil {
		return 0, nil, err
	}
	res, err := a.h.PublishCourse(r.Context(), m, commands.PublishCourse{ID: id})
	return http.StatusOK, res, err
}

func (a *API) archiveCourse(w http.ResponseWriter, r *http.Request, m commands.Meta) (int, any, error) {
	if err := problem.NoBody(r); err != nil {
		return 0, nil, err
	}
	id, err := pathID(r, "id", "course")
	if err != nil {
		return 0, nil, err
	}
	res, err := a.h.ArchiveCourse(r.Context(), m, commands.ArchiveCourse{ID: id})
	return http.StatusOK, res, err
}

func (a *API) enroll(w http.ResponseWriter, r *http.Request, m commands.Meta) (int, any, error) {
	courseID, err := pathID(r, "id", "course")
	if err != nil {
		return 0, nil, err
	}
	var body struct {
		LearnerID *string `json:"learnerId"`
	}
	if err := decode(w, r, &body); err != nil {
		return 0, nil, err
	}
	learnerID, err := required("learnerId", body.LearnerID)
	if err != nil {
		return 0, nil, err
	}
	if !domain.ValidID(learnerID) {
		return 0, nil, problem.New(http.StatusNotFound, "learnerId", "learner not found")
	}
	res, err := a.h.EnrollStudent(r.Context(), m, commands.EnrollStudent{CourseID: courseID, LearnerID: learnerID})
	return created(w, res, "/v1/courses/"+courseID+"/enrollments/"+learnerID), res, err
}

func (a *API) withdraw(w http.ResponseWriter, r *http.Request, m commands.Meta) (int, any, error) {
	if err := problem.NoBody(r); err != nil {
		return 0, nil, err
	}
	courseID, err := pathID(r, "id", "course")
	if err != nil {
		return 0, nil, err
	}
	learnerID, err := pathID(r, "learnerId", "learner")
	if err != nil {
		return 0, nil, err
	}
	res, err := a.h.WithdrawEnrollment(r.Context(), m, commands.WithdrawEnrollment{CourseID: courseID, LearnerID: learnerID})
	return http.StatusOK, res, err
}

func (a *API) completeModule(w http.ResponseWriter, r *http.Request, m commands.Meta) (int, any, error) {
	if err := problem.NoBody(r); err != nil {
		return 0, nil, err
	}
	learnerID, err := pathID(r, "learnerId", "learner")
	if err != nil {
		return 0, nil, err
	}
	courseID, err := pathID(r, "courseId", "course")
	if err != nil {
		return 0, nil, err
	}
	moduleID, err := pathID(r, "moduleId", "module")
	if err != nil {
		return 0, nil, err
	}
	res, err := a.h.CompleteModule(r.Context(), m, commands.CompleteModule{LearnerID: learnerID, CourseID: courseID, ModuleID: moduleID})
	return http.StatusOK, res, err
}
