package user_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/internal/domaintest"
)

const id = "u-1"

var (
	t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	t1 = t0.Add(time.Hour)
)

var registered = user.Registered{UserID: id, Name: "Ada Lovelace", Email: "ada@example.com", Role: domain.Learner, At: t0}

// testCase is one given / when / then of a user.User; domaintest.Run runs a table of them.
type testCase = domaintest.Case[*user.User]

func run(t *testing.T, cases []testCase) {
	t.Helper()
	domaintest.Run(t, func() *user.User { return user.New(id) }, state, cases)
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
		domaintest.CheckErr(t, err, nil, domain.Invalid, "role")
	}
}

func TestRegister(t *testing.T) {
	register := func(name, email string, role domain.Role) func(*user.User) error {
		return func(u *user.User) error { return u.Register(name, email, role, t0) }
	}
	// 254 characters, in labels of at most 63.
	longEmail := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 57) + ".com"
	invalid := func(name, email string, role domain.Role, field string) testCase {
		return testCase{When: register(name, email, role), Kind: domain.Invalid, Field: field}
	}
	cases := []testCase{
		{
			Name: "records a registration",
			When: register("Ada Lovelace", "ada@example.com", domain.Learner),
			Then: []domain.Event{registered},
		},
		{
			Name: "registers an instructor",
			When: register("Grace Hopper", "grace@example.com", domain.Instructor),
			Then: []domain.Event{user.Registered{UserID: id, Name: "Grace Hopper", Email: "grace@example.com", Role: domain.Instructor, At: t0}},
		},
		{
			Name: "accepts a name of 200 runes",
			When: register(strings.Repeat("é", 200), "ada@example.com", domain.Learner),
			Then: []domain.Event{user.Registered{UserID: id, Name: strings.Repeat("é", 200), Email: "ada@example.com", Role: domain.Learner, At: t0}},
		},
		{
			Name: "accepts an email of 254 characters",
			When: register("Ada", longEmail, domain.Learner),
			Then: []domain.Event{user.Registered{UserID: id, Name: "Ada", Email: longEmail, Role: domain.Learner, At: t0}},
		},
		{
			// Like any retried command: the same registration again changes nothing.
			Name:  "records nothing for the same registration again",
			Given: []domain.Event{registered},
			When:  register("Ada Lovelace", "ada@example.com", domain.Learner),
		},
		{
			Name:  "rejects a second registration with another name",
			Given: []domain.Event{registered},
			When:  register("Ada King", "ada@example.com", domain.Learner),
			Err:   user.ErrAlreadyRegistered, Kind: domain.Conflict,
		},
		{
			Name:  "rejects a second registration with another role",
			Given: []domain.Event{registered},
			When:  register("Ada Lovelace", "ada@example.com", domain.Instructor),
			Err:   user.ErrAlreadyRegistered, Kind: domain.Conflict,
		},
		{
			Name: "accepts every character a dot-atom local part may hold",
			When: register("Ada", "a.b!#$%&'*+/=?^_`{|}~-9@sub-1.example.co", domain.Learner),
			Then: []domain.Event{user.Registered{UserID: id, Name: "Ada", Email: "a.b!#$%&'*+/=?^_`{|}~-9@sub-1.example.co",
				Role: domain.Learner, At: t0}},
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
		// What the OpenAPI document's pattern refuses, the server refuses.
		{"rejects a domain without a dot", invalid("Ada", "ada@localhost", domain.Learner, "email")},
		{"rejects a domain label of 64 characters", invalid("Ada", "ada@"+strings.Repeat("b", 64)+".com", domain.Learner, "email")},
		{"rejects a label that starts with a hyphen", invalid("Ada", "ada@-example.com", domain.Learner, "email")},
		{"rejects an underscore in the domain", invalid("Ada", "ada@ex_ample.com", domain.Learner, "email")},
		{"rejects a quoted local part", invalid("Ada", `"ada lovelace"@example.com`, domain.Learner, "email")},
		{"rejects an address literal", invalid("Ada", "ada@[192.0.2.1]", domain.Learner, "email")},
		{"rejects two dots in a row", invalid("Ada", "ada..l@example.com", domain.Learner, "email")},
		{"rejects a non-ASCII address", invalid("Ada", "adä@example.com", domain.Learner, "email")},
		{"rejects an empty role", invalid("Ada", "ada@example.com", "", "role")},
		{"rejects an unknown role", invalid("Ada", "ada@example.com", "admin", "role")},
	} {
		c.tc.Name = c.name
		cases = append(cases, c.tc)
	}
	run(t, cases)
}

func TestChangeName(t *testing.T) {
	run(t, []testCase{
		{
			Name:  "records the new name",
			Given: []domain.Event{registered},
			When:  func(u *user.User) error { return u.ChangeName("Ada King", t1) },
			Then:  []domain.Event{user.NameChanged{UserID: id, Name: "Ada King", At: t1}},
		},
		{
			Name:  "records nothing for the same name",
			Given: []domain.Event{registered},
			When:  func(u *user.User) error { return u.ChangeName("Ada Lovelace", t1) },
		},
		{
			Name:  "rejects a name of only whitespace",
			Given: []domain.Event{registered},
			When:  func(u *user.User) error { return u.ChangeName("   ", t1) },
			Kind:  domain.Invalid, Field: "name",
		},
		{
			Name:  "rejects a name longer than 200 runes",
			Given: []domain.Event{registered},
			When:  func(u *user.User) error { return u.ChangeName(strings.Repeat("x", 201), t1) },
			Kind:  domain.Invalid, Field: "name",
		},
		{
			Name: "rejects an unregistered user",
			When: func(u *user.User) error { return u.ChangeName("Ada King", t1) },
			Err:  user.ErrNotFound, Kind: domain.NotFound,
		},
	})
}

func TestChangeEmail(t *testing.T) {
	run(t, []testCase{
		{
			Name:  "records the new email",
			Given: []domain.Event{registered},
			When:  func(u *user.User) error { return u.ChangeEmail("ada@lovelace.org", t1) },
			Then:  []domain.Event{user.EmailChanged{UserID: id, Email: "ada@lovelace.org", At: t1}},
		},
		{
			Name:  "records nothing for the same email",
			Given: []domain.Event{registered},
			When:  func(u *user.User) error { return u.ChangeEmail("ada@example.com", t1) },
		},
		{
			Name:  "keeps the last of several changes",
			Given: []domain.Event{registered, user.EmailChanged{UserID: id, Email: "ada@lovelace.org", At: t1}},
			When:  func(u *user.User) error { return u.ChangeEmail("ada@lovelace.org", t1) },
		},
		{
			Name:  "rejects an invalid email",
			Given: []domain.Event{registered},
			When:  func(u *user.User) error { return u.ChangeEmail("not an email", t1) },
			Kind:  domain.Invalid, Field: "email",
		},
		{
			Name: "rejects an unregistered user",
			When: func(u *user.User) error { return u.ChangeEmail("ada@lovelace.org", t1) },
			Err:  user.ErrNotFound, Kind: domain.NotFound,
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
	domaintest.CheckEvents(t, "user.", user.Events())
}
