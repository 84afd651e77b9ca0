package readapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/edutrack/edutrack/auth"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/problem"
	"github.com/edutrack/edutrack/readmodel"
	"github.com/edutrack/edutrack/readstore"
)

// Who may read what, once the route has admitted the caller's role. Whatever belongs to
// another person answers 404, exactly like what does not exist, so that a caller cannot probe
// for other people's ids.

// Disclosures records that someone other than the learner read the learner's records, as
// FERPA (34 CFR 99.32) requires. The read API never appends to the log: the process wires in
// the command side, and a process that cannot reach it has none.
type Disclosures interface {
	RecordDisclosure(ctx context.Context, d Disclosure) error
}

// Disclosure is one read of a learner's records by someone else.
type Disclosure struct {
	LearnerID string
	Recipient auth.Principal
	Record    learner.Record
	// Reason is the reader's own account of why, from the reason parameter; it may be empty.
	Reason string
	// RequestID and CorrelationID are the request's own, for the event's metadata.
	RequestID     string
	CorrelationID string
}

// errNoCaller means a route was mounted without the authenticator; it fails closed as a 500.
var errNoCaller = errors.New("readapi: no caller in the request context; is the route behind the authenticator?")

func caller(r *http.Request) (auth.Principal, error) {
	p, ok := auth.FromContext(r.Context())
	if !ok {
		return auth.Principal{}, errNoCaller
	}
	return p, nil
}

func notFound(what string) error { return problem.New(http.StatusNotFound, "", what+" not found") }

// courseAccess is what access decisions need of a course_details document.
type courseAccess struct {
	Status     string `json:"status"`
	Instructor struct {
		ID string `json:"id"`
	} `json:"instructor"`
}

// mayView lets everyone the route admits see a published or archived course, and a draft only
// its instructor and admins: a draft is its instructor's work in progress.
func mayView(r *http.Request, details []byte) error {
	p, err := caller(r)
	if err != nil || p.Role == auth.Admin {
		return err
	}
	var c courseAccess
	if err := json.Unmarshal(details, &c); err != nil {
		return fmt.Errorf("decode course details: %w", err)
	}
	if c.Status == "draft" && (p.Role != auth.Instructor || c.Instructor.ID != p.Subject) {
		return notFound("course")
	}
	return nil
}

// mayTeach lets an instructor read the stats and roster of their own courses, and admins those
// of any. It answers 404 for a course that does not exist, except to an admin when mustExist is
// false: the document the admin reads answers for itself.
func (a *API) mayTeach(r *http.Request, courseID string, mustExist bool) error {
	p, err := caller(r)
	if err != nil {
		return err
	}
	if p.Role == auth.Admin {
		if !mustExist {
			return nil
		}
		if _, err := a.store.Get(r.Context(), readmodel.CourseDetails, courseID); errors.Is(err, readstore.ErrNotFound) {
			return notFound("course")
		} else if err != nil {
			return err
		}
		return nil
	}
	e, err := a.load(r, readmodel.CourseDetails, courseID, "course")
	if err != nil {
		return err
	}
	var c courseAccess
	if err := json.Unmarshal(e.Body, &c); err != nil {
		return fmt.Errorf("decode course details of %s: %w", courseID, err)
	}
	if p.Role != auth.Instructor || c.Instructor.ID != p.Subject {
		return notFound("course")
	}
	return nil
}

// learnerRead is one allowed read of a learner's records.
type learnerRead struct {
	api    *API
	d      Disclosure
	record bool // whether the read is a disclosure
}

// learnerRead decides a read of learner id's records. Learners read their own; admins and
// auditors read anyone's, and their read is a disclosure that disclose records before the
// records leave. A process without Disclosures refuses such reads rather than disclose
// unrecorded.
func (a *API) learnerRead(r *http.Request, id string, what learner.Record) (learnerRead, error) {
	p, err := caller(r)
	if err != nil {
		return learnerRead{}, err
	}
	reason := r.URL.Query().Get("reason")
	if utf8.RuneCountInString(reason) > learner.MaxReasonLen {
		return learnerRead{}, problem.New(http.StatusBadRequest, "reason", fmt.Sprintf("must be at most %d characters", learner.MaxReasonLen))
	}
	read := learnerRead{api: a, d: Disclosure{LearnerID: id, Recipient: p, Record: what, Reason: reason,
		RequestID: r.Header.Get("X-Request-Id"), CorrelationID: r.Header.Get("X-Correlation-Id")}}
	switch {
	case p.Role == auth.Learner && p.Subject == id:
		return read, nil
	case p.Role == auth.Learner:
		return learnerRead{}, notFound("learner")
	case p.Role != auth.Admin && p.Role != auth.Auditor:
		return learnerRead{}, problem.New(http.StatusForbidden, "", fmt.Sprintf("the %s role may not do this", p.Role))
	case a.opts.Disclosures == nil:
		return learnerRead{}, problem.New(http.StatusServiceUnavailable, "",
			"this process cannot record disclosures; read other people's records through a process that holds the event log")
	}
	read.record = true
	return read, nil
}

// disclose records the read, if it is a disclosure. It runs once the records are loaded, so a
// read that finds nothing records nothing, and before they are sent.
func (read learnerRead) disclose(r *http.Request) error {
	if !read.record {
		return nil
	}
	if err := read.api.opts.Disclosures.RecordDisclosure(r.Context(), read.d); err != nil {
		return fmt.Errorf("record the disclosure of %s's %s: %w", read.d.LearnerID, read.d.Record, err)
	}
	return nil
}

// mayListDisclosures lets learners list the disclosures of their own records, and admins and
// auditors anyone's. Reading that list is not itself a disclosure: it is the record of them.
func mayListDisclosures(r *http.Request, id string) error {
	p, err := caller(r)
	if err != nil {
		return err
	}
	switch {
	case p.Role == auth.Admin || p.Role == auth.Auditor || (p.Role == auth.Learner && p.Subject == id):
		return nil
	case p.Role == auth.Learner:
		return notFound("learner")
	}
	return problem.New(http.StatusForbidden, "", fmt.Sprintf("the %s role may not do this", p.Role))
}
