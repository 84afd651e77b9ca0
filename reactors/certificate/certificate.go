// Package certificate issues the certificate of a completed course: the job queued on
// CourseCompleted, the PDF it renders, where it stores it (a blob bucket), the command it sends
// to record it, and the congratulation email.
package certificate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"gocloud.dev/blob"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/reactors/email"
	"github.com/edutrack/edutrack/reactors/logfacts"
)

// Args is the job that issues the certificate of one completion. It carries ids only: names and
// titles are read from the log when it runs.
type Args struct {
	// EventID is the CourseCompleted event's id: one job, and one certificate, per completion.
	EventID   string `json:"eventId" river:"unique"`
	LearnerID string `json:"learnerId"`
	CourseID  string `json:"courseId"`
}

// Kind names the job in the queue; it must never change while such jobs may be queued.
func (Args) Kind() string { return "certificate" }

// MaxAttempts is how often a certificate is tried before the job is discarded (with the backoff
// serve uses, a day and more: a blob store may be away for hours).
const MaxAttempts = 20

// Queue is the queue of the certificate jobs, apart from the emails so neither holds up the other.
const Queue = "certificates"

// InsertOpts puts the job in the certificate queue.
func (Args) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: MaxAttempts}
}

// OnCompleted is the reactor's trigger of the certificate: the job for a CourseCompleted event,
// and nil for every other event.
func OnCompleted(e eventstore.RecordedEvent) (river.JobArgs, error) {
	if e.Type != (learner.CourseCompleted{}).EventType() {
		return nil, nil
	}
	var completed learner.CourseCompleted
	if err := json.Unmarshal(e.Data, &completed); err != nil {
		return nil, fmt.Errorf("decode %s at %d: %w", e.Type, e.Position, err)
	}
	return Args{EventID: e.ID.String(), LearnerID: completed.LearnerID, CourseID: completed.CourseID}, nil
}

// namespace derives certificate ids from completion events.
var namespace = uuid.MustParse("0b7d6c55-3f0e-4a52-9d3e-6f1f7b8e2c41")

// ID is the id of the certificate of the completion eventID. It follows from the event alone, so
// every attempt of the job names the same certificate; it is not the event's id, which stays
// internal.
func ID(eventID string) string { return uuid.NewSHA1(namespace, []byte(eventID)).String() }

// CommandID is the id of the IssueCertificate command the job of eventID sends: the same for
// every attempt, so the log takes it once.
func CommandID(eventID string) string { return "certificate." + eventID }

// BlobKey is where the PDF of certificate id with digest sum is kept. It names the content, so a
// key is written with one content only: an attempt that renders other bytes (the learner was
// renamed between two attempts) writes beside the first instead of over the PDF a recorded
// digest describes.
func BlobKey(id, sum string) string { return "certificates/" + id + "/" + sum + ".pdf" }

// Bucket is where the PDFs go: a gocloud.dev *blob.Bucket, opened by URL where the process is
// wired.
type Bucket interface {
	WriteAll(ctx context.Context, key string, p []byte, opts *blob.WriterOptions) error
}

// Issue is the IssueCertificate command, as the job sends it.
type Issue struct {
	// CommandID makes every attempt of one job the same command.
	CommandID     string
	LearnerID     string
	CourseID      string
	CertificateID string
	BlobKey       string
	SHA256        string
}

// Issuer sends the IssueCertificate command. Its errors are the domain's: a Conflict (the course
// not completed, another certificate issued) cancels the job, any other error retries it.
type Issuer interface {
	IssueCertificate(ctx context.Context, c Issue) error
}

// Streams is what the worker reads of the event log: the learner's stream and account, the
// course and its instructor's account.
type Streams = logfacts.Streams

// Backoff says when a failed job is tried again.
type Backoff func(attempt int) time.Duration

// Worker issues certificates.
type Worker struct {
	river.WorkerDefaults[Args]
	streams   Streams
	bucket    Bucket
	issuer    Issuer
	mailer    email.Mailer // nil: no email
	publicURL *url.URL
	backoff   Backoff
	now       func() time.Time
}

// Options are the worker's dependencies.
type Options struct {
	Streams Streams
	Bucket  Bucket
	Issuer  Issuer
	// Mailer, if not nil, sends the congratulation email.
	Mailer email.Mailer
	// PublicURL is where EduTrack is reached: the verification link of the PDF and the email's
	// links are under it, and the email's Message-ID ends in its host.
	PublicURL *url.URL
	Backoff   Backoff
}

// NewWorker returns the worker.
func NewWorker(o Options) (*Worker, error) {
	if o.Streams == nil || o.Bucket == nil || o.Issuer == nil || o.PublicURL == nil || o.PublicURL.Host == "" || o.Backoff == nil {
		return nil, errors.New("certificate: streams, a bucket, an issuer, a public URL with a host and a backoff are required")
	}
	return &Worker{streams: o.Streams, bucket: o.Bucket, issuer: o.Issuer, mailer: o.Mailer, publicURL: o.PublicURL,
		backoff: o.Backoff, now: time.Now}, nil
}

// Work issues the certificate of one completion: it renders the PDF, stores it, records it with
// IssueCertificate, then sends the email. Each step may run again after a crash and changes
// nothing the second time: the PDF is the same bytes under the same key, the command has the
// same id, the email the same Message-ID. A certificate already recorded is not rendered again.
// A learner, course or completion the log does not know cancels the job: no retry would help.
func (w *Worker) Work(ctx context.Context, job *river.Job[Args]) error {
	a := job.Args
	facts, err := w.read(ctx, a)
	if err != nil {
		return err
	}
	certID := ID(a.EventID)
	if !facts.issued {
		doc, err := Render(facts.Content(certID, w.VerificationURL(certID)), true)
		if err != nil {
			return river.JobCancel(fmt.Errorf("render certificate %s: %w", certID, err))
		}
		sum := sha256.Sum256(doc)
		hexSum := hex.EncodeToString(sum[:])
		key := BlobKey(certID, hexSum)
		if err := w.bucket.WriteAll(ctx, key, doc, &blob.WriterOptions{ContentType: "application/pdf"}); err != nil {
			return fmt.Errorf("store certificate %s (attempt %d): %w", certID, job.Attempt, err)
		}
		err = w.issuer.IssueCertificate(ctx, Issue{CommandID: CommandID(a.EventID), LearnerID: a.LearnerID, CourseID: a.CourseID,
			CertificateID: certID, BlobKey: key, SHA256: hexSum})
		if domain.KindOf(err) == domain.Conflict {
			return river.JobCancel(fmt.Errorf("issue certificate %s: %w", certID, err))
		}
		if err != nil {
			return fmt.Errorf("issue certificate %s (attempt %d): %w", certID, job.Attempt, err)
		}
	}
	if w.mailer == nil {
		return nil
	}
	if facts.learner.Address == "" {
		return nil // nobody to congratulate; the certificate stands
	}
	m, err := w.message(job.Kind, a, certID, facts)
	if err != nil {
		return err
	}
	if err := w.mailer.Send(ctx, m); err != nil {
		return fmt.Errorf("send the certificate email of %s (attempt %d): %w", certID, job.Attempt, err)
	}
	return nil
}

// NextRetry spaces the attempts out by the backoff.
func (w *Worker) NextRetry(job *river.Job[Args]) time.Time {
	return w.now().Add(w.backoff(job.Attempt))
}

// Timeout bounds one attempt: the reads, the upload and the SMTP conversation.
func (w *Worker) Timeout(*river.Job[Args]) time.Duration { return 2 * time.Minute }

// VerificationURL is where anyone checks certificate id: the public route of the read API.
func (w *Worker) VerificationURL(id string) string {
	return w.publicURL.JoinPath("v1", "certificates", id).String()
}
