// Package access decides who may read what on the read side, once a route has admitted the
// caller's role: drafts only for their instructor, stats and rosters for the course's
// instructor, a learner's records for the learner, and for admins and auditors as a disclosure
// that is recorded before the records leave. Whatever belongs to another person answers 404,
// exactly like what does not exist, so that a caller cannot probe for other people's ids.
package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/problem"
	"github.com/edutrack/edutrack/readapi/readhttp"
)

// The roles each kind of read route admits; the others get 403 before the route runs.
var (
	// Readers read the catalog and courses.
	Readers = []domain.Role{domain.Learner, domain.Instructor, domain.Admin}
	// Teachers read the stats and rosters of courses.
	Teachers = []domain.Role{domain.Instructor, domain.Admin}
	// LearnerRecords read learners' dashboards, histories and disclosures.
	LearnerRecords = []domain.Role{domain.Learner, domain.Admin, domain.Auditor}
	// Everyone is every role: routes whose handler decides alone, answering 404 to the roles
	// it refuses, so that a certificate's existence shows to nobody who may not read it.
	Everyone = []domain.Role{domain.Learner, domain.Instructor, domain.Admin, domain.Auditor}
)

// errNoCaller means a route was mounted without the authenticator; it fails closed as a 500.
var errNoCaller = errors.New("readapi: no caller in the request context; is the route behind the authenticator?")

// Caller returns who sent r, as the authenticator put it in r's context.
func Caller(r *http.Request) (domain.Actor, error) { return CallerOf(r.Context()) }

// CallerOf returns who sent the request of ctx, as the authenticator put it there.
func CallerOf(ctx context.Context) (domain.Actor, error) {
	a, ok := auth.FromContext(ctx)
	if !ok {
		return domain.Actor{}, errNoCaller
	}
	return a, nil
}

// Admits answers 403 unless a's role is one of roles: what a route's role check answers.
func Admits(a domain.Actor, roles []domain.Role) error {
	if slices.Contains(roles, a.Role) {
		return nil
	}
	return forbidden(a)
}

func forbidden(a domain.Actor) error {
	return problem.New(http.StatusForbidden, "", fmt.Sprintf("the %s role may not do this", a.Role))
}

// Course is what access decisions need of a course_details document.
type Course struct {
	Status     string `json:"status"`
	Instructor struct {
		ID string `json:"id"`
	} `json:"instructor"`
}

// DecodeCourse reads the access facts of a course_details document.
func DecodeCourse(details []byte) (Course, error) {
	var c Course
	if err := json.Unmarshal(details, &c); err != nil {
		return Course{}, fmt.Errorf("decode course details: %w", err)
	}
	return c, nil
}

// MayView lets everyone a route admits see a published or archived course, and a draft only
// its instructor and admins: a draft is its instructor's work in progress.
func MayView(a domain.Actor, details []byte) error {
	if a.Role == domain.Admin {
		return nil
	}
	c, err := DecodeCourse(details)
	if err != nil {
		return err
	}
	return c.MayView(a)
}

// MayView is MayView of the course's document, decided on its access facts.
func (c Course) MayView(a domain.Actor) error {
	if a.Role == domain.Admin {
		return nil
	}
	if c.Status == "draft" && (a.Role != domain.Instructor || c.Instructor.ID != a.UserID) {
		return readhttp.NotFound("course")
	}
	return nil
}

// MayTeach lets an instructor read the stats and roster of a course they teach; admins read
// those of any course.
func MayTeach(a domain.Actor, details []byte) error {
	if a.Role == domain.Admin {
		return nil
	}
	c, err := DecodeCourse(details)
	if err != nil {
		return err
	}
	return c.MayTeach(a)
}

// MayTeach is MayTeach of the course's document, decided on its access facts.
func (c Course) MayTeach(a domain.Actor) error {
	if a.Role == domain.Admin {
		return nil
	}
	if a.Role != domain.Instructor || c.Instructor.ID != a.UserID {
		return readhttp.NotFound("course")
	}
	return nil
}

// Courses keeps the access facts of course_details documents beside the documents, decoded
// once for each version of a document, so that a read of a hot course does not decode the whole
// document again to decide who may see it. It is safe for concurrent use.
type Courses struct {
	facts *lru.Cache[string, courseVersion]
}

// courseVersion is the access facts of one version of a document.
type courseVersion struct {
	position uint64
	course   Course
}

// NewCourses returns a Courses that holds the facts of up to size documents.
func NewCourses(size int) (*Courses, error) {
	c, err := lru.New[string, courseVersion](size)
	if err != nil {
		return nil, err
	}
	return &Courses{facts: c}, nil
}

// Facts returns the access facts of details, the document under key (its cache key, which
// names its read model's generation) at position (its version). A document's version decides
// its body, so the facts decoded once serve every read of that version.
func (cs *Courses) Facts(key string, position uint64, details []byte) (Course, error) {
	if v, ok := cs.facts.Get(key); ok && v.position == position {
		return v.course, nil
	}
	c, err := DecodeCourse(details)
	if err != nil {
		return Course{}, err
	}
	cs.facts.Add(key, courseVersion{position: position, course: c})
	return c, nil
}

// Disclosures records that someone other than the learner read the learner's records, as
// FERPA (34 CFR 99.32) requires. The read side never appends to the log: the process wires in
// the command side, and a process that cannot reach it has none.
type Disclosures interface {
	RecordDisclosure(ctx context.Context, d Disclosure) error
}

// Disclosure is one read of a learner's records by someone else.
type Disclosure struct {
	LearnerID string
	Recipient domain.Actor
	Record    learner.Record
	// Reason is the reader's own account of why, from the reason parameter; it may be empty.
	Reason string
	// RequestID and CorrelationID are the request's own, for the event's metadata.
	RequestID     string
	CorrelationID string
}

// LearnerRead is one allowed read of a learner's records.
type LearnerRead struct {
	d           Disclosure
	disclosures Disclosures // nil when the read is the learner's own
}

// ReadLearner decides r's read of learner id's records. Learners read their own; admins and
// auditors read anyone's, and their read is a disclosure that Disclose records before the
// records leave. Without disclosures (a process that cannot record them) such reads answer 503
// rather than disclose unrecorded.
func ReadLearner(r *http.Request, id string, what learner.Record, disclosures Disclosures) (LearnerRead, error) {
	a, err := Caller(r)
	if err != nil {
		return LearnerRead{}, err
	}
	return ReadLearnerAs(a, id, what, Request{Reason: r.URL.Query().Get("reason"), ID: r.Header.Get("X-Request-Id"),
		CorrelationID: r.Header.Get("X-Correlation-Id")}, disclosures)
}

// Request is what a disclosure records of the request that reads: the reader's reason, and the
// request's ids.
type Request struct {
	Reason, ID, CorrelationID string
}

// ReadLearnerAs is ReadLearner for caller a, whatever the transport that brought the request.
func ReadLearnerAs(a domain.Actor, id string, what learner.Record, req Request, disclosures Disclosures) (LearnerRead, error) {
	if utf8.RuneCountInString(req.Reason) > learner.MaxReasonLen {
		return LearnerRead{}, problem.New(http.StatusBadRequest, "reason", fmt.Sprintf("must be at most %d characters", learner.MaxReasonLen))
	}
	read := LearnerRead{d: Disclosure{LearnerID: id, Recipient: a, Record: what, Reason: req.Reason,
		RequestID: req.ID, CorrelationID: req.CorrelationID}}
	switch {
	case a.Role == domain.Learner && a.UserID == id:
		return read, nil
	case a.Role == domain.Learner:
		return LearnerRead{}, readhttp.NotFound("learner")
	case a.Role != domain.Admin && a.Role != domain.Auditor:
		return LearnerRead{}, forbidden(a)
	case disclosures == nil:
		return LearnerRead{}, problem.New(http.StatusServiceUnavailable, "",
			"this process cannot record disclosures; read other people's records through a process that holds the event log")
	}
	read.disclosures = disclosures
	return read, nil
}

// Disclose records the read, if it is a disclosure. Call it once the records are loaded, so a
// read that finds nothing records nothing, and before they are sent.
func (read LearnerRead) Disclose(ctx context.Context) error {
	if read.disclosures == nil {
		return nil
	}
	if err := read.disclosures.RecordDisclosure(ctx, read.d); err != nil {
		return fmt.Errorf("record the disclosure of %s's %s: %w", read.d.LearnerID, read.d.Record, err)
	}
	return nil
}

// MayListDisclosures lets learners list the disclosures of their own records, and admins and
// auditors anyone's. Reading that list is not itself a disclosure: it is the record of them.
func MayListDisclosures(r *http.Request, id string) error {
	a, err := Caller(r)
	if err != nil {
		return err
	}
	switch {
	case a.Role == domain.Admin || a.Role == domain.Auditor || (a.Role == domain.Learner && a.UserID == id):
		return nil
	case a.Role == domain.Learner:
		return readhttp.NotFound("learner")
	}
	return forbidden(a)
}

// ReadCertificate decides r's read of the PDF of learner id's certificate of a course taught by
// instructorID. The learner reads their own, and the course's instructor the certificates of
// their course, as they read its roster; admins read any, as a disclosure that Disclose records
// before the PDF leaves (503 without disclosures). Anyone else gets 404, as for a certificate
// that does not exist.
func ReadCertificate(r *http.Request, id, instructorID string, disclosures Disclosures) (LearnerRead, error) {
	a, err := Caller(r)
	if err != nil {
		return LearnerRead{}, err
	}
	reason := r.URL.Query().Get("reason")
	if utf8.RuneCountInString(reason) > learner.MaxReasonLen {
		return LearnerRead{}, problem.New(http.StatusBadRequest, "reason", fmt.Sprintf("must be at most %d characters", learner.MaxReasonLen))
	}
	read := LearnerRead{d: Disclosure{LearnerID: id, Recipient: a, Record: learner.RecordCertificate, Reason: reason,
		RequestID: r.Header.Get("X-Request-Id"), CorrelationID: r.Header.Get("X-Correlation-Id")}}
	switch {
	case a.Role == domain.Learner && a.UserID == id:
		return read, nil
	case a.Role == domain.Instructor && a.UserID == instructorID && instructorID != "":
		return read, nil
	case a.Role != domain.Admin:
		return LearnerRead{}, readhttp.NotFound("certificate")
	case disclosures == nil:
		return LearnerRead{}, problem.New(http.StatusServiceUnavailable, "",
			"this process cannot record disclosures; read other people's records through a process that holds the event log")
	}
	read.disclosures = disclosures
	return read, nil
}

// MayReadFiles lets the learners enrolled in a course (active or completed: their roster
// entry's status), its instructor and admins fetch the files of its modules. A learner who
// withdrew reads them again once re-enrolled. Anyone else, auditors included (a course's
// material is no learner's record), gets 404, as for a file that does not exist.
func MayReadFiles(a domain.Actor, c Course, enrollment string) error {
	switch {
	case a.Role == domain.Admin:
		return nil
	case a.Role == domain.Instructor && a.UserID == c.Instructor.ID && c.Instructor.ID != "":
		return nil
	case a.Role == domain.Learner && c.Status != "draft" &&
		(enrollment == string(learner.StatusActive) || enrollment == string(learner.StatusCompleted)):
		return nil
	}
	return readhttp.NotFound("file")
}
