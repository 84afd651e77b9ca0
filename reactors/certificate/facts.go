package certificate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/mail"
	"time"

	"github.com/riverqueue/river"

	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/reactors/logfacts"
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
	if f.learner, err = logfacts.Account(ctx, w.streams, a.LearnerID); err != nil {
		return f, err
	}
	c, err := logfacts.CourseOf(ctx, w.streams, a.CourseID)
	if err != nil {
		return f, err
	}
	f.courseTitle = c.Title
	who, err := logfacts.Account(ctx, w.streams, c.InstructorID)
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
