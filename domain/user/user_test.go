package user_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/user"
)

const id = "u-1"

var (
	t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Hour)
)

var registered = user.Registered{UserID: id, Name: "Ada Lovelace", Email: "ada@example.com", Role: domain.Learner, At: t0}

// testCase is one given / when / then: given events applied, when a command, then the events it
// records or the error it returns (err with errors.Is, kind and field for validation errors).
type testCase struct {
	name  string
	given []domain.Event
	when  func(u *user.User) error
	then  []domain.Event
	err   error
	kind  domain.Kind
	field string
}

func run(t *testing.T, cases []testCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := user.New(id)
			for _, e := range tc.given {
				u.Apply(e)
			}
			err := tc.when(u)
			checkErr(t, err, tc.err, tc.kind, tc.field)
			if diff := cmp.Diff(tc.then, u.Changes(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
			// Replaying what was recorded must reach the state that recording reached.
			replayed := user.New(id)
			for _, e := range slices.Concat(tc.given, u.Changes()) {
				replayed.Apply(e)
			}
			if diff := cmp.Diff(state(u), state(replayed)); diff != "" {
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
	ID, Name, Email string
	Registered      bool
	Role            domain.Role
}

func state(u *user.User) snapshot {
	return snapshot{ID: u.ID(), Name: u.Name(), Email: u.Email(), Registered: u.Registered(), Role: u.Role()}
}

func TestParseRole(t *testing.T) {
	for _, s := range []string{"learner", "instructor"} {
		r, err := user.ParseRole(s)
		if err != nil || string(r) != s {
			t.Errorf("ParseRole(%q) = %q, %v", s, r, err)
		}
	}
	for _, s := range []string{"", "admin", "Learner", " learner"} {
		_, err := user.ParseRole(s)
		checkErr(t, err, nil, domain.Invalid, "role")
	}
}

func TestRegister(t *testing.T) {
	register := func(name, email string, role domain.Role) func(*user.User) error {
		return func(u *user.User) error { return u.Register(name, email, role, t0) }
	}
	longEmail := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com" // 254 characters
	invalid := func(name, email string, role domain.Role, field string) testCase {
		return testCase{when: register(name, email, role), kind: domain.Invalid, field: field}
	}
	cases := []testCase{
		{
			name: "records a registration",
			when: register("Ada Lovelace", "ada@example.com", domain.Learner),
			then: []domain.Event{registered},
		},
		{
			name: "registers an instructor",
			when: register("Grace Hopper", "grace@example.com", domain.Instructor),
			then: []domain.Event{user.Registered{UserID: id, Name: "Grace Hopper", Email: "grace@example.com", Role: domain.Instructor, At: t0}},
		},
		{
			name: "accepts a name of 200 runes",
			when: register(strings.Repeat("é", 200), "ada@example.com", domain.Learner),
			then: []domain.Event{user.Registered{UserID: id, Name: strings.Repeat("é", 200), Email: "ada@example.com", Role: domain.Learner, At: t0}},
		},
		{
			name: "accepts an email of 254 characters",
			when: register("Ada", longEmail, domain.Learner),
			then: []domain.Event{user.Registered{UserID: id, Name: "Ada", Email: longEmail, Role: domain.Learner, At: t0}},
		},
		{
			name:  "rejects a second registration",
			given: []domain.Event{registered},
			when:  register("Ada Lovelace", "ada@example.com", domain.Learner),
			err:   user.ErrAlreadyRegistered, kind: domain.Conflict,
		},
	}
	for _, c := range []struct {
		name string
		tc   testCase
	}{
		{"rejects an empty name", invalid("", "ada@example.com", domain.Learner, "name")},
		{"rejects a name of only whitespace", invalid(" \t\n", "ada@example.com", domain.Learner, "name")},
		{"rejects a name longer than 200 runes", invalid(strings.Repeat("é", 201), "ada@example.com", domain.Learner, "name")},
		{"rejects a name that is not UTF-8", invalid("Ada\xff", "ada@example.com", domain.Learner, "name")},
		{"rejects an empty email", invalid("Ada", "", domain.Learner, "email")},
		{"rejects an invalid email", invalid("Ada", "ada.example.com", domain.Learner, "email")},
		{"rejects an email with a display name", invalid("Ada", "Ada <ada@example.com>", domain.Learner, "email")},
		{"rejects an email in angle brackets", invalid("Ada", "<ada@example.com>", domain.Learner, "email")},
		{"rejects an email with surrounding spaces", invalid("Ada", " ada@example.com ", domain.Learner, "email")},
		{"rejects two emails", invalid("Ada", "ada@example.com, bob@example.com", domain.Learner, "email")},
		{"rejects an email longer than 254 characters", invalid("Ada", longEmail+"m", domain.Learner, "email")},
		{"rejects an empty role", invalid("Ada", "ada@example.com", "", "role")},
		{"rejects an unknown role", invalid("Ada", "ada@example.com", "admin", "role")},
	} {
		c.tc.name = c.name
		cases = append(cases, c.tc)
	}
	run(t, cases)
}

func TestChangeName(t *testing.T) {
	run(t, []testCase{
		{
			name:  "records the new name",
			given: []domain.Event{registered},
			when:  func(u *user.User) error { return u.ChangeName("Ada King", t1) },
			then:  []domain.Event{user.NameChanged{UserID: id, Name: "Ada King", At: t1}},
		},
		{
			name:  "records nothing for the same name",
			given: []domain.Event{registered},
			when:  func(u *user.User) error { return u.ChangeName("Ada Lovelace", t1) },
		},
		{
			name:  "rejects a name of only whitespace",
			given: []domain.Event{registered},
			when:  func(u *user.User) error { return u.ChangeName("   ", t1) },
			kind:  domain.Invalid, field: "name",
		},
		{
			name:  "rejects a name longer than 200 runes",
			given: []domain.Event{registered},
			when:  func(u *user.User) error { return u.ChangeName(strings.Repeat("x", 201), t1) },
			kind:  domain.Invalid, field: "name",
		},
		{
			name: "rejects an unregistered user",
			when: func(u *user.User) error { return u.ChangeName("Ada King", t1) },
			err:  user.ErrNotFound, kind: domain.NotFound,
		},
	})
}

func TestChangeEmail(t *testing.T) {
	run(t, []testCase{
		{
			name:  "records the new email",
			given: []domain.Event{registered},
			when:  func(u *user.User) error { return u.ChangeEmail("ada@lovelace.org", t1) },
			then:  []domain.Event{user.EmailChanged{UserID: id, Email: "ada@lovelace.org", At: t1}},
		},
		{
			name:  "records nothing for the same email",
			given: []domain.Event{registered},
			when:  func(u *user.User) error { return u.ChangeEmail("ada@example.com", t1) },
		},
		{
			name:  "keeps the last of several changes",
			given: []domain.Event{registered, user.EmailChanged{UserID: id, Email: "ada@lovelace.org", At: t1}},
			when:  func(u *user.User) error { return u.ChangeEmail("ada@lovelace.org", t1) },
		},
		{
			name:  "rejects an invalid email",
			given: []domain.Event{registered},
			when:  func(u *user.User) error { return u.ChangeEmail("not an email", t1) },
			kind:  domain.Invalid, field: "email",
		},
		{
			name: "rejects an unregistered user",
			when: func(u *user.User) error { return u.ChangeEmail("ada@lovelace.org", t1) },
			err:  user.ErrNotFound, kind: domain.NotFound,
		},
	})
}

func TestApply(t *testing.T) {
	t.Run("accepts pointers to events", func(t *testing.T) {
		u := user.New(id)
		u.Apply(&registered)
		u.Apply(&user.NameChanged{UserID: id, Name: "Ada King", At: t1})
		u.Apply(&user.EmailChanged{UserID: id, Email: "ada@king.org", At: t1})
		u.Apply((*user.NameChanged)(nil))
		want := snapshot{ID: id, Name: "Ada King", Email: "ada@king.org", Registered: true, Role: domain.Learner}
		if diff := cmp.Diff(want, state(u)); diff != "" {
			t.Errorf("state (-want +got):\n%s", diff)
		}
		if len(u.Changes()) != 0 {
			t.Errorf("Apply recorded changes: %v", u.Changes())
		}
	})
	t.Run("ignores unknown events", func(t *testing.T) {
		u := user.New(id)
		u.Apply(unknown{})
		if diff := cmp.Diff(snapshot{ID: id}, state(u)); diff != "" {
			t.Errorf("state (-want +got):\n%s", diff)
		}
	})
}

type unknown struct{}

func (unknown) EventType() string { return "test.unknown.v1" }

func TestClearChanges(t *testing.T) {
	u := user.New(id)
	if err := u.Register("Ada", "ada@example.com", domain.Learner, t0); err != nil {
		t.Fatal(err)
	}
	u.ClearChanges()
	if err := u.ChangeName("Ada King", t1); err != nil {
		t.Fatal(err)
	}
	want := []domain.Event{user.NameChanged{UserID: id, Name: "Ada King", At: t1}}
	if diff := cmp.Diff(want, u.Changes()); diff != "" {
		t.Errorf("changes (-want +got):\n%s", diff)
	}
}

func TestEvents(t *testing.T) {
	checkEvents(t, "user.", user.Events())
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
