// Package user owns the User aggregate: who a person is in EduTrack (name, email) and the role
// that decides what they may do.
package user

import (
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edutrack/edutrack/domain"
)

// ParseRole returns the role spelled s if a user may register with it (learner or instructor),
// or an Invalid error on field "role". Admins and auditors are granted by the deployment's
// identity provider, never registered.
func ParseRole(s string) (domain.Role, error) {
	r := domain.Role(s)
	if !registrable(r) {
		return "", errRole
	}
	return r, nil
}

var errRole = domain.Invalidf("role", "must be %q or %q", domain.Learner, domain.Instructor)

func registrable(r domain.Role) bool { return r == domain.Learner || r == domain.Instructor }

// EmailPattern is the one form of email address EduTrack takes, and the pattern the OpenAPI
// document declares for it, so that a client validating against the document and the server
// agree: a dot-atom local part and a domain of letter-digit-hyphen labels (at most 63
// characters each, at least two), as RFC 5321 and JSON Schema's email format read them, in
// ASCII. A display name, angle brackets, comments, quoted local parts and address literals are
// refused: the address is stored exactly as given.
const EmailPattern = "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*" +
	"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"

var emailPattern = regexp.MustCompile(EmailPattern)

const (
	maxNameLen  = 200
	maxEmailLen = 254 // RFC 5321's limit on a forward path, counted in runes like every length here
)

var (
	// ErrAlreadyRegistered is returned by Register when the user already exists.
	ErrAlreadyRegistered = domain.Errorf(domain.Conflict, "user is already registered")
	// ErrNotFound is returned by the change commands when the user was never registered.
	ErrNotFound = domain.Errorf(domain.NotFound, "user not found")
)

// User is one person's account. Build it with New, replay its history with Apply and change it
// with the command methods.
type User struct {
	id         string
	registered bool
	name       string
	email      string
	role       domain.Role

	domain.Recorder
}

// New returns an empty User for id, with nothing recorded yet.
func New(id string) *User { return &User{id: id} }

func (u *User) ID() string        { return u.id }
func (u *User) Registered() bool  { return u.registered }
func (u *User) Name() string      { return u.name }
func (u *User) Email() string     { return u.email }
func (u *User) Role() domain.Role { return u.role }

// Register creates the account; registering again exactly as the account stands changes
// nothing. It returns ErrAlreadyRegistered, or an Invalid error on "name", "email" or "role".
func (u *User) Register(name, email string, role domain.Role, at time.Time) error {
	if u.registered {
		if name == u.name && email == u.email && role == u.role {
			return nil // the same registration again changes nothing, like any retried command
		}
		return ErrAlreadyRegistered
	}
	if err := validateName(name); err != nil {
		return err
	}
	if err := validateEmail(email); err != nil {
		return err
	}
	if !registrable(role) {
		return errRole
	}
	u.record(Registered{UserID: u.id, Name: name, Email: email, Role: role, At: at})
	return nil
}

// ChangeName renames the user. It returns ErrNotFound or an Invalid error on "name".
func (u *User) ChangeName(name string, at time.Time) error {
	if !u.registered {
		return ErrNotFound
	}
	if err := validateName(name); err != nil {
		return err
	}
	if name == u.name {
		return nil
	}
	u.record(NameChanged{UserID: u.id, Name: name, At: at})
	return nil
}

// ChangeEmail changes the user's address. It returns ErrNotFound or an Invalid error on "email".
// Whether another user already holds the address is not this aggregate's to know.
func (u *User) ChangeEmail(email string, at time.Time) error {
	if !u.registered {
		return ErrNotFound
	}
	if err := validateEmail(email); err != nil {
		return err
	}
	if email == u.email {
		return nil
	}
	u.record(EmailChanged{UserID: u.id, Email: email, At: at})
	return nil
}

// Apply applies one recorded event, as when replaying the stream. Unknown events are ignored.
func (u *User) Apply(e domain.Event) {
	switch e := e.(type) {
	case Registered:
		u.registered, u.name, u.email, u.role = true, e.Name, e.Email, e.Role
	case *Registered:
		if e != nil {
			u.Apply(*e)
		}
	case NameChanged:
		u.name = e.Name
	case *NameChanged:
		if e != nil {
			u.Apply(*e)
		}
	case EmailChanged:
		u.email = e.Email
	case *EmailChanged:
		if e != nil {
			u.Apply(*e)
		}
	}
}

func (u *User) record(e domain.Event) { domain.Record(&u.Recorder, u.Apply, e) }

func validateName(name string) error {
	switch {
	case !utf8.ValidString(name):
		// JSON would store U+FFFD instead, so a replay would not see what was decided on.
		return domain.Invalidf("name", "must be valid UTF-8")
	case strings.TrimSpace(name) == "":
		return domain.Invalidf("name", "must not be empty")
	case utf8.RuneCountInString(name) > maxNameLen:
		return domain.Invalidf("name", "must be at most %d characters", maxNameLen)
	}
	return nil
}

func validateEmail(email string) error {
	switch {
	case !utf8.ValidString(email):
		return domain.Invalidf("email", "must be valid UTF-8")
	case strings.TrimSpace(email) == "":
		return domain.Invalidf("email", "must not be empty")
	case utf8.RuneCountInString(email) > maxEmailLen:
		return domain.Invalidf("email", "must be at most %d characters", maxEmailLen)
	}
	if !emailPattern.MatchString(email) {
		return domain.Invalidf("email", "must be a plain email address such as name@example.com")
	}
	return nil
}
