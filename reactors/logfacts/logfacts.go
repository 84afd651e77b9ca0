// Package logfacts reads what a job needs to know of a user or a course from their streams in
// the event log, as their events leave them when the job runs: an email goes to the current
// address, a certificate names the course's current title. Jobs hold ids only, so the queue
// keeps no personal data.
package logfacts

import (
	"context"
	"encoding/json"
	"fmt"
	"net/mail"

	"github.com/riverqueue/river"

	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/eventstore"
)

// Streams reads one stream of the event log.
type Streams interface {
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error)
}

// Account is the name and address of user id. A user the log does not know cancels the job:
// no retry would find them.
func Account(ctx context.Context, s Streams, id string) (mail.Address, error) {
	events, err := s.ReadStream(ctx, user.StreamPrefix+id, 1, 0)
	if err != nil {
		return mail.Address{}, fmt.Errorf("read the account of %s: %w", id, err)
	}
	if len(events) == 0 {
		return mail.Address{}, river.JobCancel(fmt.Errorf("user %s: no such account", id))
	}
	var who mail.Address
	for _, e := range events {
		var err error
		switch e.Type {
		case (user.Registered{}).EventType():
			var ev user.Registered
			err = json.Unmarshal(e.Data, &ev)
			who = mail.Address{Name: ev.Name, Address: ev.Email}
		case (user.NameChanged{}).EventType():
			var ev user.NameChanged
			err = json.Unmarshal(e.Data, &ev)
			who.Name = ev.Name
		case (user.EmailChanged{}).EventType():
			var ev user.EmailChanged
			err = json.Unmarshal(e.Data, &ev)
			who.Address = ev.Email
		}
		if err != nil {
			return mail.Address{}, fmt.Errorf("decode %s of %s: %w", e.Type, id, err)
		}
	}
	return who, nil
}

// Course is what a job shows of a course.
type Course struct {
	Title        string
	InstructorID string
}

// CourseOf is course id as its events leave it. A course the log does not know cancels the job.
func CourseOf(ctx context.Context, s Streams, id string) (Course, error) {
	events, err := s.ReadStream(ctx, course.StreamPrefix+id, 1, 0)
	if err != nil {
		return Course{}, fmt.Errorf("read course %s: %w", id, err)
	}
	if len(events) == 0 {
		return Course{}, river.JobCancel(fmt.Errorf("course %s: no such course", id))
	}
	var c Course
	for _, e := range events {
		var err error
		switch e.Type {
		case (course.Created{}).EventType():
			var ev course.Created
			err = json.Unmarshal(e.Data, &ev)
			c = Course{Title: ev.Title, InstructorID: ev.InstructorID}
		case (course.DetailsUpdated{}).EventType():
			var ev course.DetailsUpdated
			err = json.Unmarshal(e.Data, &ev)
			c.Title = ev.Title
		}
		if err != nil {
			return Course{}, fmt.Errorf("decode %s of course %s: %w", e.Type, id, err)
		}
	}
	return c, nil
}
