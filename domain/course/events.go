package course

import (
	"time"

	"github.com/edutrack/edutrack/domain"
)

// Created: an instructor created a draft course.
type Created struct {
	CourseID     string    `json:"courseId"`
	Title        string    `json:"title"`
	Description  string    `json:"description"`
	Category     string    `json:"category"`
	Level        Level     `json:"level"`
	InstructorID string    `json:"instructorId"`
	At           time.Time `json:"at"`
}

// DetailsUpdated: a course's details changed; it carries all of them as they now are, so a reader
// needs no earlier event to know them.
type DetailsUpdated struct {
	CourseID    string    `json:"courseId"`
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Category    string    `json:"category"`
	Level       Level     `json:"level"`
	At          time.Time `json:"at"`
}

// ModuleAdded: a module was appended to the course; modules keep the order they were added in.
type ModuleAdded struct {
	CourseID string    `json:"courseId"`
	ModuleID string    `json:"moduleId"`
	Title    string    `json:"title"`
	At       time.Time `json:"at"`
}

// Published: the course opened for enrollment.
type Published struct {
	CourseID string    `json:"courseId"`
	At       time.Time `json:"at"`
}

// Archived: the course closed to new enrollments and changes.
type Archived struct {
	CourseID string    `json:"courseId"`
	At       time.Time `json:"at"`
}

func (Created) EventType() string        { return "course.created.v1" }
func (DetailsUpdated) EventType() string { return "course.details_updated.v1" }
func (ModuleAdded) EventType() string    { return "course.module_added.v1" }
func (Published) EventType() string      { return "course.published.v1" }
func (Archived) EventType() string       { return "course.archived.v1" }

// Events returns one zero value of every event type this package defines, for a codec registry.
func Events() []domain.Event {
	return append([]domain.Event{Created{}, DetailsUpdated{}, ModuleAdded{}, Published{}, Archived{}, ImageUploaded{}, ImageSet{}}, fileEvents()...)
}

// StreamPrefix begins the id of every course stream: the stream of course id is StreamPrefix + id.
const StreamPrefix = "course-"
