package domain

import "fmt"

// Role says what an actor may do. A user registers as a learner or an instructor; admins and
// auditors are roles that a deployment's identity provider grants.
type Role string

// The roles an actor may act in.
const (
	Learner    Role = "learner"
	Instructor Role = "instructor"
	Admin      Role = "admin"
	// Auditor reads everything and changes nothing.
	Auditor Role = "auditor"
)

// ErrUnknownRole is returned by ParseRole for a name that is not one of the four roles.
var ErrUnknownRole = Invalidf("role", "must be learner, instructor, admin or auditor")

// ParseRole returns the Role spelled s, or ErrUnknownRole.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case Learner, Instructor, Admin, Auditor:
		return r, nil
	}
	return "", fmt.Errorf("unknown role %q: %w", s, ErrUnknownRole)
}

// Actor is who acts: a user and the role they act in. Commands record the actor in every
// event's metadata and decide from it what the actor may do. An Actor without a role is
// EduTrack itself (a reactor, an import, a test), which may do anything; its UserID, if any,
// names the part of EduTrack that acts.
type Actor struct {
	UserID string
	Role   Role
}

// System reports whether a is EduTrack itself rather than a caller somebody authenticated.
func (a Actor) System() bool { return a.Role == "" }
