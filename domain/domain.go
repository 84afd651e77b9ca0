// Package domain holds what every EduTrack aggregate shares: the event contract, the Recorder
// of the events not yet stored, and the error kinds that the HTTP layers map to status codes in
// one place.
package domain

import (
	"errors"
	"fmt"
)

// Event is a fact an aggregate recorded. EventType is the stable stored name with its schema
// version, such as "learner.module_completed.v1"; it never changes once events of it exist.
type Event interface {
	EventType() string
}

// Kind classifies an error by what the caller did wrong, so transports can answer without knowing
// every rule.
type Kind int

const (
	// Internal is the kind of any error that carries no other kind.
	Internal Kind = iota
	// Invalid means the input itself is malformed or out of range.
	Invalid
	// NotFound means something the command names does not exist.
	NotFound
	// Conflict means a rule forbids the change in the current state.
	Conflict
	// Forbidden means the caller's role may never do this, whatever the state.
	Forbidden
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case NotFound:
		return "not found"
	case Conflict:
		return "conflict"
	case Forbidden:
		return "forbidden"
	default:
		return "internal"
	}
}

// Error is a rule violation. Field names the input it concerns (as the API spells it), when one
// does.
type Error struct {
	Kind    Kind
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// Errorf returns an Error of the given kind.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Invalidf returns an Invalid error about one input field.
func Invalidf(field, format string, args ...any) *Error {
	return &Error{Kind: Invalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// WithField returns a copy of e that names field, for rules whose field depends on the caller
// (a missing user is "instructorId" to one command and "learnerId" to another).
func (e *Error) WithField(field string) *Error {
	c := *e
	c.Field = field
	return &c
}

// Is lets a copy made by WithField still match its sentinel with errors.Is.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.Message == e.Message
}

// KindOf returns the kind of the first *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	var de *Error
	if errors.As(err, &de) {
		return de.Kind
	}
	return Internal
}

// ValidID reports whether id has the form of every EduTrack id, users', courses' and modules':
// 1 to 64 characters of a-z, 0-9 and "-". Ids name streams and appear in URLs, so they need
// no escaping anywhere.
func ValidID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
