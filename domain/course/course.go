// Package course owns the Course aggregate: a course's details, its ordered modules and its
// lifecycle from draft through published to archived.
package course

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/user"
)

// Level is how much a course expects its learners to know already.
type Level string

const (
	LevelBeginner     Level = "beginner"
	LevelIntermediate Level = "intermediate"
	LevelAdvanced     Level = "advanced"
)

// ParseLevel returns the Level spelled s, or an Invalid error on field "level".
func ParseLevel(s string) (Level, error) {
	l := Level(s)
	if !l.valid() {
		return "", errInvalidLevel()
	}
	return l, nil
}

func (l Level) valid() bool {
	return l == LevelBeginner || l == LevelIntermediate || l == LevelAdvanced
}

func errInvalidLevel() error {
	return domain.Invalidf("level", "must be %q, %q or %q", LevelBeginner, LevelIntermediate, LevelAdvanced)
}

// Status is where a course is in its lifecycle. The zero Status means the course was never
// created.
type Status string

const (
	StatusDraft     Status = "draft"
	StatusPublished Status = "published"
	StatusArchived  Status = "archived"
)

const (
	maxTitleLen       = 200
	maxDescriptionLen = 10_000
	maxCategoryLen    = 100
	maxModuleIDLen    = 64
	// MaxModules is how many modules one course may hold.
	MaxModules = 500
)

var (
	// ErrAlreadyExists is returned by Create when the course was already created.
	ErrAlreadyExists = domain.Errorf(domain.Conflict, "course already exists")
	// ErrNotFound is returned by every command but Create when the course was never created.
	ErrNotFound = domain.Errorf(domain.NotFound, "course not found")
	// ErrArchived is returned when a command would change an archived course.
	ErrArchived = domain.Errorf(domain.Conflict, "course is archived")
	// ErrInstructorNotFound is returned by Create (on field "instructorId") when the instructor is
	// not a registered user.
	ErrInstructorNotFound = domain.Errorf(domain.NotFound, "instructor not found")
	// ErrNotAnInstructor is returned by Create (on field "instructorId") when the user's role is
	// not instructor.
	ErrNotAnInstructor = domain.Errorf(domain.Conflict, "user is not an instructor")
	// ErrModuleExists is returned by AddModule (on field "id") when the module id is taken by a
	// module with a different title.
	ErrModuleExists = domain.Errorf(domain.Conflict, "a module with this id already exists")
	// ErrTooManyModules is returned by AddModule when the course already holds MaxModules modules.
	ErrTooManyModules = domain.Errorf(domain.Conflict, "course has too many modules")
	// ErrNoModules is returned by Publish when the course has no module to learn.
	ErrNoModules = domain.Errorf(domain.Conflict, "course has no modules")
	// ErrNotPublished is returned by Archive when the course is still a draft.
	ErrNotPublished = domain.Errorf(domain.Conflict, "course is not published")
)

// Details are what a course says about itself in the catalog.
type Details struct {
	Title       string
	Description string
	Category    string
	Level       Level
}

// DetailsPatch changes some of a course's details: a nil field keeps the current value.
type DetailsPatch struct {
	Title       *string
	Description *string
	Category    *string
	Level       *Level
}

// Module is one unit of a course that a learner completes.
type Module struct {
	ID    string
	Title string
}

// Course is one course. Build it with New, replay its history with Apply and change it with the
// command methods.
type Course struct {
	id           string
	status       Status
	details      Details
	instructorID string
	modules      []Module
	moduleIndex  map[string]int // module id -> position in modules, so lookups stay O(1)
	publishedAt  time.Time
	files        map[string]*moduleFile // by file id; see files.go
	image        image

	domain.Recorder
}

// New returns an empty Course for id, with nothing recorded yet.
func New(id string) *Course { return &Course{id: id} }

func (c *Course) ID() string { return c.id }

// Exists reports whether the course was created.
func (c *Course) Exists() bool     { return c.status != "" }
func (c *Course) Status() Status   { return c.status }
func (c *Course) Details() Details { return c.details }

// InstructorID is the id of the user who created the course.
func (c *Course) InstructorID() string { return c.instructorID }

// Modules returns a copy of the modules in the order they were added.
func (c *Course) Modules() []Module { return slices.Clone(c.modules) }
func (c *Course) ModuleCount() int  { return len(c.modules) }

// HasModule reports whether the course has a module with this id.
func (c *Course) HasModule(id string) bool {
	_, ok := c.moduleIndex[id]
	return ok
}

// Module returns the module with this id, and whether the course has it.
func (c *Course) Module(id string) (Module, bool) {
	i, ok := c.moduleIndex[id]
	if !ok {
		return Module{}, false
	}
	return c.modules[i], true
}

// PublishedAt is when the course was published, or the zero time if it never was.
func (c *Course) PublishedAt() time.Time { return c.publishedAt }

// Create creates the course as a draft taught by instructor. It returns ErrAlreadyExists,
// ErrInstructorNotFound, ErrNotAnInstructor, or an Invalid error on a details field.
func (c *Course) Create(d Details, instructor *user.User, at time.Time) error {
	if c.Exists() {
		return ErrAlreadyExists
	}
	if err := d.validate(); err != nil {
		return err
	}
	if instructor == nil || !instructor.Registered() {
		return ErrInstructorNotFound.WithField("instructorId")
	}
	if instructor.Role() != domain.Instructor {
		return ErrNotAnInstructor.WithField("instructorId")
	}
	c.record(Created{
		CourseID:     c.id,
		Title:        d.Title,
		Description:  d.Description,
		Category:     d.Category,
		Level:        d.Level,
		InstructorID: instructor.ID(),
		At:           at,
	})
	return nil
}

// UpdateDetails changes the fields p sets. It returns ErrNotFound, ErrArchived, or an Invalid
// error on a details field.
func (c *Course) UpdateDetails(p DetailsPatch, at time.Time) error {
	if err := c.checkChangeable(); err != nil {
		return err
	}
	d := c.details
	if p.Title != nil {
		d.Title = *p.Title
	}
	if p.Description != nil {
		d.Description = *p.Description
	}
	if p.Category != nil {
		d.Category = *p.Category
	}
	if p.Level != nil {
		d.Level = *p.Level
	}
	if err := d.validate(); err != nil {
		return err
	}
	if d == c.details {
		return nil
	}
	c.record(DetailsUpdated{
		CourseID:    c.id,
		Title:       d.Title,
		Description: d.Description,
		Category:    d.Category,
		Level:       d.Level,
		At:          at,
	})
	return nil
}

// AddModule appends a module, to a draft or a published course. Adding the same id with the same
// title again changes nothing. It returns ErrNotFound, ErrArchived, ErrModuleExists,
// ErrTooManyModules, or an Invalid error on "title" or "id".
func (c *Course) AddModule(moduleID, title string, at time.Time) error {
	if err := c.checkChangeable(); err != nil {
		return err
	}
	if err := validateText("title", title, 1, maxTitleLen); err != nil {
		return err
	}
	if !validModuleID(moduleID) {
		return domain.Invalidf("id", "must be 1 to %d characters of a-z, 0-9 and '-'", maxModuleIDLen)
	}
	if i, ok := c.moduleIndex[moduleID]; ok {
		if c.modules[i].Title == title {
			return nil
		}
		return ErrModuleExists.WithField("id")
	}
	if len(c.modules) >= MaxModules {
		return ErrTooManyModules
	}
	c.record(ModuleAdded{CourseID: c.id, ModuleID: moduleID, Title: title, At: at})
	return nil
}

// Publish opens the course for enrollment. Publishing a published course changes nothing. It
// returns ErrNotFound, ErrArchived or ErrNoModules.
func (c *Course) Publish(at time.Time) error {
	switch c.status {
	case "":
		return ErrNotFound
	case StatusPublished:
		return nil
	case StatusArchived:
		return ErrArchived
	}
	if len(c.modules) == 0 {
		return ErrNoModules
	}
	c.record(Published{CourseID: c.id, At: at})
	return nil
}

// Archive closes a published course to new enrollments and changes. Archiving an archived course
// changes nothing. It returns ErrNotFound or ErrNotPublished.
func (c *Course) Archive(at time.Time) error {
	switch c.status {
	case "":
		return ErrNotFound
	case StatusArchived:
		return nil
	case StatusDraft:
		return ErrNotPublished
	}
	c.record(Archived{CourseID: c.id, At: at})
	return nil
}

// Apply applies one recorded event, as when replaying the stream. Unknown events are ignored.
func (c *Course) Apply(e domain.Event) {
	switch e := e.(type) {
	case Created:
		c.status = StatusDraft
		c.instructorID = e.InstructorID
		c.details = Details{Title: e.Title, Description: e.Description, Category: e.Category, Level: e.Level}
	case *Created:
		if e != nil {
			c.Apply(*e)
		}
	case DetailsUpdated:
		c.details = Details{Title: e.Title, Description: e.Description, Category: e.Category, Level: e.Level}
	case *DetailsUpdated:
		if e != nil {
			c.Apply(*e)
		}
	case ModuleAdded:
		if c.HasModule(e.ModuleID) {
			return // ids are unique; AddModule never records a second one
		}
		if c.moduleIndex == nil {
			c.moduleIndex = make(map[string]int)
		}
		c.moduleIndex[e.ModuleID] = len(c.modules)
		c.modules = append(c.modules, Module{ID: e.ModuleID, Title: e.Title})
	case *ModuleAdded:
		if e != nil {
			c.Apply(*e)
		}
	case Published:
		c.status = StatusPublished
		c.publishedAt = e.At
	case *Published:
		if e != nil {
			c.Apply(*e)
		}
	case Archived:
		c.status = StatusArchived
	case *Archived:
		if e != nil {
			c.Apply(*e)
		}
	default:
		c.applyFile(e)
		c.applyImage(e)
	}
}

func (c *Course) record(e domain.Event) { domain.Record(&c.Recorder, c.Apply, e) }

func (c *Course) checkChangeable() error {
	switch c.status {
	case "":
		return ErrNotFound
	case StatusArchived:
		return ErrArchived
	}
	return nil
}

func (d Details) validate() error {
	if err := validateText("title", d.Title, 1, maxTitleLen); err != nil {
		return err
	}
	if err := validateText("description", d.Description, 0, maxDescriptionLen); err != nil {
		return err
	}
	if err := validateText("category", d.Category, 1, maxCategoryLen); err != nil {
		return err
	}
	if !d.Level.valid() {
		return errInvalidLevel()
	}
	return nil
}

// validateText checks s as given: a value of only whitespace counts as empty, and lengths count
// runes.
func validateText(field, s string, minLen, maxLen int) error {
	switch {
	case !utf8.ValidString(s):
		// JSON would store U+FFFD instead, so a replay would not see what was decided on.
		return domain.Invalidf(field, "must be valid UTF-8")
	case minLen > 0 && strings.TrimSpace(s) == "":
		return domain.Invalidf(field, "must not be empty")
	case utf8.RuneCountInString(s) > maxLen:
		return domain.Invalidf(field, "must be at most %d characters", maxLen)
	}
	return nil
}

// validModuleID reports whether id matches ^[a-z0-9-]{1,64}$.
func validModuleID(id string) bool {
	if id == "" || len(id) > maxModuleIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		b := id[i]
		if (b < 'a' || b > 'z') && (b < '0' || b > '9') && b != '-' {
			return false
		}
	}
	return true
}
