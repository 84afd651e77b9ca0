package certificate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/mail"
	"time"

	"github.com/riverqueue/river"

	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/domain/user"
)

// facts is what a certificate says, read from the log when the job runs.
type facts struct {
	learner     mail.Address
	courseTitle string
	instructor  string
	completedAt time.Time
	// issued is true once the certificate of this completion is recorded.
	issued bool
}

// Content is what the PDF of certificate id shows.
func (f facts) Content(id, verifyURL string) Content {
	return Content{CertificateID: id, LearnerName: f.learner.Name, CourseTitle: f.courseTitle, Instructor: f.instructor,
		CompletedAt: f.completedAt, VerificationURL: verifyURL}
}

func (w *Worker) read(ctx context.Context, a Args) (facts, error) {
	var f facts
	var err error
	if f.completedAt, f.issued, err = w.completion(ctx, a); err != nil {
		return f, err
	}
	if f.learner, err = w.person(ctx, a.LearnerID); err != nil {
		return f, err
	}
	var instructorID string
	if f.courseTitle, instructorID, err = w.course(ctx, a.CourseID); err != nil {
		return f, err
	}
	who, err := w.person(ctx, instructorID)
	if err != nil {
		return f, err
	}
	f.instructor = who.Name
	return f, nil
}

// completion finds the completion in the learner's stream, and whether its certificate is
// recorded.
func (w *Worker) completion(ctx context.Context, a Args) (at time.Time, issued bool, err error) {
	events, err := w.streams.ReadStream(ctx, learner.StreamPrefix+a.LearnerID, 1, 0)
	if err != nil {
		return at, false, fmt.Errorf("read learner %s: %w", a.LearnerID, err)
	}
	found, certID := false, ID(a.EventID)
	for _, e := range events {
		switch {
		case e.ID.String() == a.EventID:
			var ev learner.CourseCompleted
			if err := json.Unmarshal(e.Data, &ev); err != nil {
				return at, false, fmt.Errorf("decode %s of learner %s: %w", e.Type, a.LearnerID, err)
			}
			at, found = ev.At, true
		case e.Type == (learner.CertificateIssued{}).EventType():
			var ev learner.CertificateIssued
			if err := json.Unmarshal(e.Data, &ev); err != nil {
				return at, false, fmt.Errorf("decode %s of learner %s: %w", e.Type, a.LearnerID, err)
			}
			issued = issued || ev.CertificateID == certID
		}
	}
	if !found {
		return at, false, river.JobCancel(fmt.Errorf("learner %s: no completion %s", a.LearnerID, a.EventID))
	}
	return at, issued, nil
}

// person is a user's name and address as their account's events leave them.
func (w *Worker) person(ctx context.Context, id string) (mail.Address, error) {
	events, err := w.streams.ReadStream(ctx, user.StreamPrefix+id, 1, 0)
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

// course is the course's title and instructor as its events leave them.
func (w *Worker) course(ctx context.Context, id string) (title, instructorID string, err error) {
	events, err := w.streams.ReadStream(ctx, course.StreamPrefix+id, 1, 0)
	if err != nil {
		return "", "", fmt.Errorf("read course %s: %w", id, err)
	}
	if len(events) == 0 {
		return "", "", river.JobCancel(fmt.Errorf("course %s: no such course", id))
	}
	for _, e := range events {
		var err error
		switch e.Type {
		case (course.Created{}).EventType():
			var ev course.Created
			err = json.Unmarshal(e.Data, &ev)
			title, instructorID = ev.Title, ev.InstructorID
		case (course.DetailsUpdated{}).EventType():
			var ev course.DetailsUpdated
			err = json.Unmarshal(e.Data, &ev)
			title = ev.Title
		}
		if err != nil {
			return "", "", fmt.Errorf("decode %s of course %s: %w", e.Type, id, err)
		}
	}
	return title, instructorID, nil
}
