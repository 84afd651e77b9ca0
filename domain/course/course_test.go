package course_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/user"
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

// testCase is one given / when / then: given events applied, when a command, then the events it
// records or the error it returns (err with errors.Is, kind and field for every error).
type testCase struct {
	name  string
	given []domain.Event
	when  func(c *course.Course) error
	then  []domain.Event
	err   error
	kind  domain.Kind
	field string
}

func run(t *testing.T, cases []testCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := course.New(id)
			for _, e := range tc.given {
				c.Apply(e)
			}
			err := tc.when(c)
			checkErr(t, err, tc.err, tc.kind, tc.field)
			if diff := cmp.Diff(tc.then, c.Changes(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			// Replaying what was recorded must reach the state that recording reached.
			replayed := course.New(id)
			for _, e := range slices.Concat(tc.given, c.Changes()) {
				replayed.Apply(e)
			}
			if diff := cmp.Diff(state(c), state(replayed)); diff != "" {
				t.Errorf("replayed state (-recorded +replayed):\n%s", diff)
			}
		})
	}
}

func checkErr(t *testing.T, err, want error, kind domain.Kind, field string) {
	t.Helper()
	if want == nil && kind == domain.Internal {
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("err = nil, want %v (kind %v, field %q)", want, kind, field)
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("err = %v, want %v", err, want)
	}
	if kind != domain.Internal && domain.KindOf(err) != kind {
		t.Errorf("kind = %v, want %v (err %v)", domain.KindOf(err), kind, err)
	}
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("err %v is not a *domain.Error", err)
	}
	if de.Field != field {
		t.Errorf("field = %q, want %q", de.Field, field)
	}
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
		checkErr(t, err, nil, domain.Invalid, "level")
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
			name: "records a draft course",
			when: create(details, teacher),
			then: []domain.Event{created},
		},
		{
			name: "accepts an empty description and the longest values",
			when: create(course.Details{
				Title: strings.Repeat("é", 200), Category: strings.Repeat("é", 100), Level: course.LevelAdvanced,
			}, teacher),
			then: []domain.Event{course.Created{
				CourseID: id, Title: strings.Repeat("é", 200), Category: strings.Repeat("é", 100),
				Level: course.LevelAdvanced, InstructorID: "u-teacher", At: t0,
			}},
		},
		{
			name: "accepts a description of 10,000 runes",
			when: create(with(func(d *course.Details) { d.Description = strings.Repeat("é", 10_000) }), teacher),
			then: []domain.Event{func() course.Created { e := created; e.Description = strings.Repeat("é", 10_000); return e }()},
		},
		{
			name:  "rejects a course that already exists",
			given: []domain.Event{created},
			when:  create(details, teacher),
			err:   course.ErrAlreadyExists, kind: domain.Conflict,
		},
		{
			name: "rejects an instructor who is not registered",
			when: create(details, user.New("u-teacher")),
			err:  course.ErrInstructorNotFound, kind: domain.NotFound, field: "instructorId",
		},
		{
			name: "rejects a missing instructor",
			when: create(details, nil),
			err:  course.ErrInstructorNotFound, kind: domain.NotFound, field: "instructorId",
		},
		{
			name: "rejects a learner as instructor",
			when: create(details, newUser("u-student", domain.Learner)),
			err:  course.ErrNotAnInstructor, kind: domain.Conflict, field: "instructorId",
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
			name: inv.name, when: create(with(inv.change), teacher), kind: domain.Invalid, field: inv.field,
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
			name:  "records the full details after a change",
			given: []domain.Event{created},
			when:  update(course.DetailsPatch{Title: ptr("Go, for real"), Level: ptr(course.LevelIntermediate)}),
			then: []domain.Event{course.DetailsUpdated{
				CourseID: id, Title: "Go, for real", Description: details.Description, Category: details.Category,
				Level: course.LevelIntermediate, At: t1,
			}},
		},
		{
			name:  "updates a published course",
			given: []domain.Event{created, moduleAdded, published},
			when:  update(course.DetailsPatch{Description: ptr(""), Category: ptr("software")}),
			then: []domain.Event{course.DetailsUpdated{
				CourseID: id, Title: details.Title, Category: "software", Level: details.Level, At: t1,
			}},
		},
		{
			name:  "records nothing for an empty patch",
			given: []domain.Event{created},
			when:  update(course.DetailsPatch{}),
		},
		{
			name:  "records nothing when every value is the current one",
			given: []domain.Event{created},
			when: update(course.DetailsPatch{
				Title: ptr(details.Title), Description: ptr(details.Description), Category: ptr(details.Category), Level: ptr(details.Level),
			}),
		},
		{
			name: "rejects a course that does not exist",
			when: update(course.DetailsPatch{Title: ptr("New")}),
			err:  course.ErrNotFound, kind: domain.NotFound,
		},
		{
			name:  "rejects an archived course",
			given: []domain.Event{created, moduleAdded, published, archived},
			when:  update(course.DetailsPatch{Title: ptr("New")}),
			err:   course.ErrArchived, kind: domain.Conflict,
		},
		{
			name:  "rejects an empty title",
			given: []domain.Event{created},
			when:  update(course.DetailsPatch{Title: ptr(" ")}),
			kind:  domain.Invalid, field: "title",
		},
		{
			name:  "rejects a description longer than 10,000 runes",
			given: []domain.Event{created},
			when:  update(course.DetailsPatch{Description: ptr(strings.Repeat("x", 10_001))}),
			kind:  domain.Invalid, field: "description",
		},
		{
			name:  "rejects an empty category",
			given: []domain.Event{created},
			when:  update(course.DetailsPatch{Category: ptr("")}),
			kind:  domain.Invalid, field: "category",
		},
		{
			name:  "rejects an unknown level",
			given: []domain.Event{created},
			when:  update(course.DetailsPatch{Level: ptr(course.Level("expert"))}),
			kind:  domain.Invalid, field: "level",
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
			name:  "records a module",
			given: []domain.Event{created},
			when:  add("intro", "Introduction"),
			then:  []domain.Event{moduleAdded},
		},
		{
			name:  "appends to a published course",
			given: []domain.Event{created, moduleAdded, published},
			when:  func(c *course.Course) error { return c.AddModule("types", "Types", t1) },
			then:  []domain.Event{module2Added},
		},
		{
			name:  "accepts the longest id",
			given: []domain.Event{created},
			when:  add(strings.Repeat("a-9", 21)+"z", "Long"),
			then:  []domain.Event{course.ModuleAdded{CourseID: id, ModuleID: strings.Repeat("a-9", 21) + "z", Title: "Long", At: t0}},
		},
		{
			name:  "records nothing for the same id and title",
			given: []domain.Event{created, moduleAdded},
			when:  add("intro", "Introduction"),
		},
		{
			name:  "records nothing for a module already there when the course is full",
			given: full,
			when:  add("m-0", "Module"),
		},
		{
			name:  "rejects the same id with another title",
			given: []domain.Event{created, moduleAdded},
			when:  add("intro", "Getting started"),
			err:   course.ErrModuleExists, kind: domain.Conflict, field: "id",
		},
		{
			name:  "rejects a module beyond 500",
			given: full,
			when:  add("one-more", "One more"),
			err:   course.ErrTooManyModules, kind: domain.Conflict,
		},
		{
			name: "rejects a course that does not exist",
			when: add("intro", "Introduction"),
			err:  course.ErrNotFound, kind: domain.NotFound,
		},
		{
			name:  "rejects an archived course",
			given: []domain.Event{created, moduleAdded, published, archived},
			when:  add("types", "Types"),
			err:   course.ErrArchived, kind: domain.Conflict,
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
			name: inv.name, given: []domain.Event{created}, when: add(inv.moduleID, inv.title), kind: domain.Invalid, field: inv.field,
		})
	}
	run(t, cases)
}

func TestPublish(t *testing.T) {
	publish := func(c *course.Course) error { return c.Publish(t1) }
	run(t, []testCase{
		{
			name:  "publishes a draft with modules",
			given: []domain.Event{created, moduleAdded},
			when:  publish,
			then:  []domain.Event{published},
		},
		{
			name:  "records nothing for a published course",
			given: []domain.Event{created, moduleAdded, published},
			when:  func(c *course.Course) error { return c.Publish(t2) },
		},
		{
			name: "rejects a course that does not exist",
			when: publish,
			err:  course.ErrNotFound, kind: domain.NotFound,
		},
		{
			name:  "rejects a draft without modules",
			given: []domain.Event{created},
			when:  publish,
			err:   course.ErrNoModules, kind: domain.Conflict,
		},
		{
			name:  "rejects an archived course",
			given: []domain.Event{created, moduleAdded, published, archived},
			when:  publish,
			err:   course.ErrArchived, kind: domain.Conflict,
		},
	})
}

func TestArchive(t *testing.T) {
	archive := func(c *course.Course) error { return c.Archive(t2) }
	run(t, []testCase{
		{
			name:  "archives a published course",
			given: []domain.Event{created, moduleAdded, published},
			when:  archive,
			then:  []domain.Event{archived},
		},
		{
			name:  "records nothing for an archived course",
			given: []domain.Event{created, moduleAdded, published, archived},
			when:  archive,
		},
		{
			name: "rejects a course that does not exist",
			when: archive,
			err:  course.ErrNotFound, kind: domain.NotFound,
		},
		{
			name:  "rejects a draft",
			given: []domain.Event{created, moduleAdded},
			when:  archive,
			err:   course.ErrNotPublished, kind: domain.Conflict,
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
	checkEvents(t, "course.", course.Events())
}

// checkEvents checks that every event type has a unique versioned name and survives a JSON round
// trip with camelCase keys.
func checkEvents(t *testing.T, prefix string, events []domain.Event) {
	seen := map[string]bool{}
	for _, e := range events {
		name := e.EventType()
		if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, ".v1") || seen[name] {
			t.Errorf("event type %q: want unique, %q prefix, .v1 suffix", name, prefix)
		}
		seen[name] = true
		typ := reflect.TypeOf(e)
		if typ.Kind() != reflect.Struct {
			t.Errorf("%s: want a value type, got %v", name, typ)
			continue
		}
		for i := range typ.NumField() {
			tag := typ.Field(i).Tag.Get("json")
			if tag == "" || strings.ToLower(tag[:1]) != tag[:1] {
				t.Errorf("%s.%s: json tag %q is not camelCase", name, typ.Field(i).Name, tag)
			}
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		back := reflect.New(typ)
		if err := json.Unmarshal(b, back.Interface()); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(e, back.Elem().Interface()); diff != "" {
			t.Errorf("%s round trip (-want +got):\n%s", name, diff)
		}
	}
}
