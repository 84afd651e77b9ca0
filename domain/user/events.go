package user

import (
	"time"

	"github.com/edutrack/edutrack/domain"
)

// Registered: a person created their account.
type Registered struct {
	UserID string      `json:"userId"`
	Name   string      `json:"name"`
	Email  string      `json:"email"`
	Role   domain.Role `json:"role"`
	At     time.Time   `json:"at"`
}

// NameChanged: a user's name is now Name.
type NameChanged struct {
	UserID string    `json:"userId"`
	Name   string    `json:"name"`
	At     time.Time `json:"at"`
}

// EmailChanged: a user's email address is now Email.
type EmailChanged struct {
	UserID string    `json:"userId"`
	Email  string    `json:"email"`
	At     time.Time `json:"at"`
}

func (Registered) EventType() string   { return "user.registered.v1" }
func (NameChanged) EventType() string  { return "user.name_changed.v1" }
func (EmailChanged) EventType() string { return "user.email_changed.v1" }

// Events returns one zero value of every event type this package defines, for a codec registry.
func Events() []domain.Event {
	return []domain.Event{Registered{}, NameChanged{}, EmailChanged{}}
}

// StreamPrefix begins the id of every user stream: the stream of user id is StreamPrefix + id.
const StreamPrefix = "user-"
