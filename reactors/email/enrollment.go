package email

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	texttemplate "text/template"
	"time"

	"github.com/riverqueue/river"

	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/reactors/logfacts"
)

// EnrollmentArgs is the job that confirms an enrollment by email. It carries ids only: the
// learner's name and address are read when it runs, so the queue holds no personal data and the
// email goes to the address the learner has then.
type EnrollmentArgs struct {
	// EventID is the StudentEnrolled event's id: one job per event.
	EventID   string `json:"eventId" river:"unique"`
	LearnerID string `json:"learnerId"`
	CourseID  string `json:"courseId"`
	Resumed   bool   `json:"resumed"`
}

// Kind names the job in the queue; it must never change while such jobs may be queued.
func (EnrollmentArgs) Kind() string { return "enrollment_email" }

// MaxAttempts is how often an enrollment email is tried before it is discarded (with the backoff
// serve uses, three to six hours in all).
const MaxAttempts = 12

// InsertOpts puts the job in the email queue.
func (EnrollmentArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: MaxAttempts}
}

// Queue is the queue of every email job.
const Queue = "email"

// OnEnrolled is the reactor's trigger of the enrollment email: the job for a StudentEnrolled
// event, and nil for every other event.
func OnEnrolled(e eventstore.RecordedEvent) (river.JobArgs, error) {
	if e.Type != (learner.Enrolled{}).EventType() {
		return nil, nil
	}
	var enrolled learner.Enrolled
	if err := json.Unmarshal(e.Data, &enrolled); err != nil {
		return nil, fmt.Errorf("decode %s at %d: %w", e.Type, e.Position, err)
	}
	return EnrollmentArgs{EventID: e.ID.String(), LearnerID: enrolled.LearnerID, CourseID: enrolled.CourseID, Resumed: enrolled.Resumed}, nil
}

// Streams is what the worker reads of the event log: the learner's account and the course.
type Streams = logfacts.Streams

// Backoff says when a failed job is tried again.
type Backoff func(attempt int) time.Duration

// EnrollmentWorker sends the enrollment emails.
type EnrollmentWorker struct {
	river.WorkerDefaults[EnrollmentArgs]
	streams   Streams
	mailer    Mailer
	publicURL *url.URL
	backoff   Backoff
	now       func() time.Time
}

// NewEnrollmentWorker returns the worker. publicURL is where learners reach EduTrack: the
// emails link to the course under it, and their Message-IDs end in its host.
func NewEnrollmentWorker(streams Streams, mailer Mailer, publicURL *url.URL, backoff Backoff) (*EnrollmentWorker, error) {
	if streams == nil || mailer == nil || publicURL == nil || publicURL.Host == "" || backoff == nil {
		return nil, errors.New("email: streams, mailer, a public URL with a host and a backoff are required")
	}
	return &EnrollmentWorker{streams: streams, mailer: mailer, publicURL: publicURL, backoff: backoff, now: time.Now}, nil
}

// Work sends the email of one enrollment. A learner or course the log does not know, or a
// learner without an address, cancels the job: no retry would change that.
func (w *EnrollmentWorker) Work(ctx context.Context, job *river.Job[EnrollmentArgs]) error {
	m, err := w.Message(ctx, job.Kind, job.Args)
	if err != nil {
		return err
	}
	if err := w.mailer.Send(ctx, m); err != nil {
		return fmt.Errorf("send the enrollment email of event %s (attempt %d): %w", job.Args.EventID, job.Attempt, err)
	}
	return nil
}

// NextRetry spaces the attempts out by the backoff.
func (w *EnrollmentWorker) NextRetry(job *river.Job[EnrollmentArgs]) time.Time {
	return w.now().Add(w.backoff(job.Attempt))
}

// Timeout bounds one attempt, the SMTP conversation included.
func (w *EnrollmentWorker) Timeout(*river.Job[EnrollmentArgs]) time.Duration { return time.Minute }

// Message renders the email of args.
func (w *EnrollmentWorker) Message(ctx context.Context, kind string, args EnrollmentArgs) (Message, error) {
	who, err := logfacts.Account(ctx, w.streams, args.LearnerID)
	if err != nil {
		return Message{}, err
	}
	if who.Address == "" {
		return Message{}, river.JobCancel(fmt.Errorf("learner %s: %w", args.LearnerID, ErrNoRecipient))
	}
	c, err := logfacts.CourseOf(ctx, w.streams, args.CourseID)
	if err != nil {
		return Message{}, err
	}
	title := c.Title
	link := w.publicURL.JoinPath("courses", args.CourseID).String()
	subject := "You are enrolled in " + title
	if args.Resumed {
		subject = "You are enrolled again in " + title
	}
	data := map[string]any{"LearnerName": who.Name, "CourseTitle": title, "Link": link, "Resumed": args.Resumed, "Subject": subject}
	var text, html bytes.Buffer
	if err := textTemplates.ExecuteTemplate(&text, "enrolled.txt", data); err != nil {
		return Message{}, err
	}
	if err := htmlTemplates.ExecuteTemplate(&html, "enrolled.html", data); err != nil {
		return Message{}, err
	}
	return Message{ID: MessageID(kind, args.EventID, w.publicURL.Hostname()), To: who, Subject: subject, Text: text.String(), HTML: html.String()}, nil
}

// MessageID is the Message-ID of the email a job of kind sends for the event eventID.
func MessageID(kind, eventID, host string) string { return kind + "." + eventID + "@" + host }

//go:embed templates
var templateFiles embed.FS

var (
	textTemplates = texttemplate.Must(texttemplate.ParseFS(templateFiles, "templates/*.txt"))
	htmlTemplates = htmltemplate.Must(htmltemplate.ParseFS(templateFiles, "templates/*.html"))
)
