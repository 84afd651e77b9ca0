package course_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/internal/domaintest"
)

const id = "c-1"

var (
	t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Hour)
	t2 = t0.Add(2 * time.Hour)
)

var (
	details = course.Details{Title: "Go in practice", Description: "Write Go that lasts.", Category: "programming", Level: course.LevelBeginner}
	created = course.Created{
		CourseID: id, Title: details.Title, Description: details.Description, Category: details.Category,
		Level: details.Level, InstructorID: "u-teacher", At: t0,
	}
	moduleAdded  = course.ModuleAdded{CourseID: id, ModuleID: "intro", Title: "Introduction", At: t0}
	module2Added = course.ModuleAdded{CourseID: id, ModuleID: "types", Title: "Types", At: t1}
	published    = course.Published{CourseID: id, At: t1}
	archived     = course.Archived{CourseID: id, At: t2}
)

func newUser(id string, role domain.Role) *user.User {
	u := user.New(id)
	u.Apply(user.Registered{UserID: id, Name: "Someone", Email: id + "@example.com", Role: role, At: t0})
	return u
}

func ptr[T any](v T) *T { return &v }

// testCase is one given / when / then of a course.Course; domaintest.Run runs a table of them.
type testCase = domaintest.Case[*course.Course]

func run(t *testing.T, cases []testCase) {
	t.Helper()
	domaintest.Run(t, func() *course.Course { return course.New(id) }, state, cases)
}

type snapshot struct {
	ID           string
	Exists       bool
	Status       course.Status
	Details      course.Details
	InstructorID string
	Modules      []course.Module
	ModuleCount  int
	PublishedAt  time.Time
}

func state(c *course.Course) snapshot {
	return snapshot{
		ID: c.ID(), Exists: c.Exists(), Status: c.Status(), Details: c.Details(), InstructorID: c.InstructorID(),
		Modules: c.Modules(), ModuleCount: c.ModuleCount(), PublishedAt: c.PublishedAt(),
	}
}

func TestParseLevel(t *testing.T) {
	for _, s := range []string{"beginner", "intermediate", "advanced"} {
		l, err := course.ParseLevel(s)
		if err != nil || string(l) != s {
			t.Errorf("ParseLevel(%q) = %q, %v", s, l, err)
		}
	}
	for _, s := range []string{"", "expert", "Beginner"} {
		_, err := course.ParseLevel(s)
		domaintest.CheckErr(t, err, nil, domain.Invalid, "level")
	}
}

func TestCreate(t *testing.T) {
	teacher := newUser("u-teacher", domain.Instructor)
	create := func(d course.Details, instructor *user.User) func(*course.Course) error {
		return func(c *course.Course) error { return c.Create(d, instructor, t0) }
	}
	with := func(change func(*course.Details)) course.Details {
		d := details
		change(&d)
		return d
	}
	cases := []testCase{
		{
			Name: "records a draft course",
			When: create(details, teacher),
			Then: []domain.Event{created},
		},
		{
			Name: "accepts an empty description and the longest values",
			When: create(course.Details{
				Title: strings.Repeat("é", 200), Category: strings.Repeat("é", 100), Level: course.LevelAdvanced,
			}, teacher),
			Then: []domain.Event{course.Created{
				CourseID: id, Title: strings.Repeat("é", 200), Category: strings.Repeat("é", 100),
				Level: course.LevelAdvanced, InstructorID: "u-teacher", At: t0,
			}},
		},
		{
			Name: "accepts a description of 10,000 runes",
			When: create(with(func(d *course.Details) { d.Description = strings.Repeat("é", 10_000) }), teacher),
			Then: []domain.Event{func() course.Created { e := created; e.Description = strings.Repeat("é", 10_000); return e }()},
		},
		{
			Name:  "rejects a course that already exists",
			Given: []domain.Event{created},
			When:  create(details, teacher),
			Err:   course.ErrAlreadyExists, Kind: domain.Conflict,
		},
		{
			Name: "rejects an instructor who is not registered",
			When: create(details, user.New("u-teacher")),
			Err:  course.ErrInstructorNotFound, Kind: domain.NotFound, Field: "instructorId",
		},
		{
			Name: "rejects a missing instructor",
			When: create(details, nil),
			Err:  course.ErrInstructorNotFound, Kind: domain.NotFound, Field: "instructorId",
		},
		{
			Name: "rejects a learner as instructor",
			When: create(details, newUser("u-student", domain.Learner)),
			Err:  course.ErrNotAnInstructor, Kind: domain.Conflict, Field: "instructorId",
		},
	}
	for _, inv := range []struct {
		name   string
		change func(*course.Details)
		field  string
	}{
		{"rejects an empty title", func(d *course.Details) { d.Title = "" }, "title"},
		{"rejects a title of only whitespace", func(d *course.Details) { d.Title = "  \t" }, "title"},
		{"rejects a title longer than 200 runes", func(d *course.Details) { d.Title = strings.Repeat("é", 201) }, "title"},
		{"rejects a title that is not UTF-8", func(d *course.Details) { d.Title = "Go\xff" }, "title"},
		{"rejects a description longer than 10,000 runes", func(d *course.Details) { d.Description = strings.Repeat("x", 10_001) }, "description"},
		{"rejects an empty category", func(d *course.Details) { d.Category = "" }, "category"},
		{"rejects a category of only whitespace", func(d *course.Details) { d.Category = " " }, "category"},
		{"rejects a category longer than 100 runes", func(d *course.Details) { d.Category = strings.Repeat("x", 101) }, "category"},
		{"rejects an empty level", func(d *course.Details) { d.Level = "" }, "level"},
		{"rejects an unknown level", func(d *course.Details) { d.Level = "expert" }, "level"},
	} {
		cases = append(cases, testCase{
			Name: inv.name, When: create(with(inv.change), teacher), Kind: domain.Invalid, Field: inv.field,
		})
	}
	run(t, cases)
}

func TestUpdateDetails(t *testing.T) {
	update := func(p course.DetailsPatch) func(*course.Course) error {
		return func(c *course.Course) error { return c.UpdateDetails(p, t1) }
	}
	cases := []testCase{
		{
			Name:  "records the full details after a change",
			Given: []domain.Event{created},
			When:  update(course.DetailsPatch{Title: ptr("Go, for real"), Level: ptr(course.LevelIntermediate)}),
			Then: []domain.Event{course.DetailsUpdated{
				CourseID: id, Title: "Go, for real", Description: details.Description, Category: details.Category,
				Level: course.LevelIntermediate, At: t1,
			}},
		},
		{
			Name:  "updates a published course",
			Given: []domain.Event{created, moduleAdded, published},
			When:  update(course.DetailsPatch{Description: ptr(""), Category: ptr("software")}),
			Then: []domain.Event{course.DetailsUpdated{
				CourseID: id, Title: details.Title, Category: "software", Level: details.Level, At: t1,
			}},
		},
		{
			Name:  "records nothing for an empty patch",
			Given: []domain.Event{created},
			When:  update(course.DetailsPatch{}),
		},
		{
			Name:  "records nothing when every value is the current one",
			Given: []domain.Event{created},
			When: update(course.DetailsPatch{
				Title: ptr(details.Title), Description: ptr(details.Description), Category: ptr(details.Category), Level: ptr(details.Level),
			}),
		},
		{
			Name: "rejects a course that does not exist",
			When: update(course.DetailsPatch{Title: ptr("New")}),
			Err:  course.ErrNotFound, Kind: domain.NotFound,
		},
		{
			Name:  "rejects an archived course",
			Given: []domain.Event{created, moduleAdded, published, archived},
			When:  update(course.DetailsPatch{Title: ptr("New")}),
			Err:   course.ErrArchived, Kind: domain.Conflict,
		},
		{
			Name:  "rejects an empty title",
			Given: []domain.Event{created},
			When:  update(course.DetailsPatch{Title: ptr(" ")}),
			Kind:  domain.Invalid, Field: "title",
		},
		{
			Name:  "rejects a description longer than 10,000 runes",
			Given: []domain.Event{created},
			When:  update(course.DetailsPatch{Description: ptr(strings.Repeat("x", 10_001))}),
			Kind:  domain.Invalid, Field: "description",
		},
		{
			Name:  "rejects an empty category",
			Given: []domain.Event{created},
			When:  update(course.DetailsPatch{Category: ptr("")}),
			Kind:  domain.Invalid, Field: "category",
		},
		{
			Name:  "rejects an unknown level",
			Given: []domain.Event{created},
			When:  update(course.DetailsPatch{Level: ptr(course.Level("expert"))}),
			Kind:  domain.Invalid, Field: "level",
		},
	}
	run(t, cases)
}

func TestAddModule(t *testing.T) {
	add := func(moduleID, title string) func(*course.Course) error {
		return func(c *course.Course) error { return c.AddModule(moduleID, title, t0) }
	}
	full := []domain.Event{created}
	for i := range course.MaxModules {
		full = append(full, course.ModuleAdded{CourseID: id, ModuleID: fmt.Sprintf("m-%d", i), Title: "Module", At: t0})
	}
	cases := []testCase{
		{
			Name:  "records a module",
			Given: []domain.Event{created},
			When:  add("intro", "Introduction"),
			Then:  []domain.Event{moduleAdded},
		},
		{
			Name:  "appends to a published course",
			Given: []domain.Event{created, moduleAdded, published},
			When:  func(c *course.Course) error { return c.AddModule("types", "Types", t1) },
			Then:  []domain.Event{module2Added},
		},
		{
			Name:  "accepts the longest id",
			Given: []domain.Event{created},
			When:  add(strings.Repeat("a-9", 21)+"z", "Long"),
			Then:  []domain.Event{course.ModuleAdded{CourseID: id, ModuleID: strings.Repeat("a-9", 21) + "z", Title: "Long", At: t0}},
		},
		{
			Name:  "records nothing for the same id and title",
			Given: []domain.Event{created, moduleAdded},
			When:  add("intro", "Introduction"),
		},
		{
			Name:  "records nothing for a module already there when the course is full",
			Given: full,
			When:  add("m-0", "Module"),
		},
		{
			Name:  "rejects the same id with another title",
			Given: []domain.Event{created, moduleAdded},
			When:  add("intro", "Getting started"),
			Err:   course.ErrModuleExists, Kind: domain.Conflict, Field: "id",
		},
		{
			Name:  "rejects a module beyond 500",
			Given: full,
			When:  add("one-more", "One more"),
			Err:   course.ErrTooManyModules, Kind: domain.Conflict,
		},
		{
			Name: "rejects a course that does not exist",
			When: add("intro", "Introduction"),
			Err:  course.ErrNotFound, Kind: domain.NotFound,
		},
		{
			Name:  "rejects an archived course",
			Given: []domain.Event{created, moduleAdded, published, archived},
			When:  add("types", "Types"),
			Err:   course.ErrArchived, Kind: domain.Conflict,
		},
	}
	for _, inv := range []struct{ name, moduleID, title, field string }{
		{"rejects an empty title", "intro", "", "title"},
		{"rejects a title of only whitespace", "intro", " \n", "title"},
		{"rejects a title longer than 200 runes", "intro", strings.Repeat("é", 201), "title"},
		{"rejects an empty id", "", "Introduction", "id"},
		{"rejects an id longer than 64 characters", strings.Repeat("a", 65), "Introduction", "id"},
		{"rejects an id with capitals", "Intro", "Introduction", "id"},
		{"rejects an id with a space", "intro one", "Introduction", "id"},
		{"rejects an id with an underscore", "intro_one", "Introduction", "id"},
		{"rejects an id with non-ASCII letters", "intró", "Introduction", "id"},
	} {
		cases = append(cases, testCase{
			Name: inv.name, Given: []domain.Event{created}, When: add(inv.moduleID, inv.title), Kind: domain.Invalid, Field: inv.field,
		})
	}
	run(t, cases)
}

func TestPublish(t *testing.T) {
	publish := func(c *course.Course) error { return c.Publish(t1) }
	run(t, []testCase{
		{
			Name:  "publishes a draft with modules",
			Given: []domain.Event{created, moduleAdded},
			When:  publish,
			Then:  []domain.Event{published},
		},
		{
			Name:  "records nothing for a published course",
			Given: []domain.Event{created, moduleAdded, published},
			When:  func(c *course.Course) error { return c.Publish(t2) },
		},
		{
			Name: "rejects a course that does not exist",
			When: publish,
			Err:  course.ErrNotFound, Kind: domain.NotFound,
		},
		{
			Name:  "rejects a draft without modules",
			Given: []domain.Event{created},
			When:  publish,
			Err:   course.ErrNoModules, Kind: domain.Conflict,
		},
		{
			Name:  "rejects an archived course",
			Given: []domain.Event{created, moduleAdded, published, archived},
			When:  publish,
			Err:   course.ErrArchived, Kind: domain.Conflict,
		},
	})
}

func TestArchive(t *testing.T) {
	archive := func(c *course.Course) error { return c.Archive(t2) }
	run(t, []testCase{
		{
			Name:  "archives a published course",
			Given: []domain.Event{created, moduleAdded, published},
			When:  archive,
			Then:  []domain.Event{archived},
		},
		{
			Name:  "records nothing for an archived course",
			Given: []domain.Event{created, moduleAdded, published, archived},
			When:  archive,
		},
		{
			Name: "rejects a course that does not exist",
			When: archive,
			Err:  course.ErrNotFound, Kind: domain.NotFound,
		},
		{
			Name:  "rejects a draft",
			Given: []domain.Event{created, moduleAdded},
			When:  archive,
			Err:   course.ErrNotPublished, Kind: domain.Conflict,
		},
	})
}

func TestGetters(t *testing.T) {
	c := course.New(id)
	for _, e := range []domain.Event{created, moduleAdded, module2Added, published, archived} {
		c.Apply(e)
	}
	want := snapshot{
		ID: id, Exists: true, Status: course.StatusArchived, Details: details, InstructorID: "u-teacher",
		Modules:     []course.Module{{ID: "intro", Title: "Introduction"}, {ID: "types", Title: "Types"}},
		ModuleCount: 2, PublishedAt: t1,
	}
	if diff := cmp.Diff(want, state(c)); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
	if !c.HasModule("types") || c.HasModule("other") {
		t.Errorf("HasModule: types = %v, other = %v", c.HasModule("types"), c.HasModule("other"))
	}
	t.Run("finds a module by its id", func(t *testing.T) {
		m, ok := c.Module("types")
		if !ok || m != (course.Module{ID: "types", Title: "Types"}) {
			t.Errorf("Module(types) = %+v, %v", m, ok)
		}
		if m, ok := c.Module("other"); ok {
			t.Errorf("Module(other) = %+v, want none", m)
		}
	})
	t.Run("returns a copy of the modules", func(t *testing.T) {
		c.Modules()[0].Title = "changed"
		if got := c.Modules()[0].Title; got != "Introduction" {
			t.Errorf("module title = %q after changing the returned slice", got)
		}
	})
	t.Run("tells a course that does not exist", func(t *testing.T) {
		c := course.New(id)
		if c.Exists() || c.Status() != "" {
			t.Errorf("new course: Exists = %v, Status = %q", c.Exists(), c.Status())
		}
	})
}

func TestApply(t *testing.T) {
	t.Run("accepts pointers to events", func(t *testing.T) {
		byValue, byPointer := course.New(id), course.New(id)
		for _, e := range []domain.Event{created, moduleAdded, published} {
			byValue.Apply(e)
		}
		byPointer.Apply(&created)
		byPointer.Apply(&moduleAdded)
		byPointer.Apply(&published)
		byPointer.Apply((*course.Archived)(nil))
		if diff := cmp.Diff(state(byValue), state(byPointer)); diff != "" {
			t.Errorf("state (-values +pointers):\n%s", diff)
		}
	})
	t.Run("ignores unknown events", func(t *testing.T) {
		c := course.New(id)
		c.Apply(unknown{})
		if c.Exists() {
			t.Error("an unknown event created the course")
		}
	})
}

type unknown struct{}

func (unknown) EventType() string { return "test.unknown.v1" }

func TestClearChanges(t *testing.T) {
	c := course.New(id)
	if err := c.Create(details, newUser("u-teacher", domain.Instructor), t0); err != nil {
		t.Fatal(err)
	}
	c.ClearChanges()
	if err := c.AddModule("intro", "Introduction", t0); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]domain.Event{moduleAdded}, c.Changes()); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}

func TestEvents(t *testing.T) {
	domaintest.CheckEvents(t, "course.", course.Events())
}
