package projections

import (
	"context"
	"slices"
	"time"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/course"
	"github.com/edutrack/edutrack/domain/learner"
	"github.com/edutrack/edutrack/domain/user"
	"github.com/edutrack/edutrack/projections/documents"
	"github.com/edutrack/edutrack/projections/readstore"
)

// Learners builds the learner dashboards, the course rosters and the certificates. It keeps
// people's names and courses' titles and module counts in collections of its own.
type Learners struct{}

const (
	learnersPeople  = "learners_people"
	learnersCourses = "learners_courses"
)

type courseInfo struct {
	Title       string `json:"title"`
	ModuleCount int    `json:"moduleCount"`
}

// Name implements Projector.
func (Learners) Name() string { return documents.LearnersProjection }

// Version implements Projector. 2: a dashboard's enrollments list their completed modules, as
// asOf does, instead of counting them. 3: enrollments show their certificate, and the
// certificates read model.
func (Learners) Version() int { return 3 }

// ReadModels implements Projector.
func (Learners) ReadModels() []string {
	return []string{documents.Dashboards, documents.Rosters, documents.Certificates, learnersPeople, learnersCourses}
}

// Collections implements Projector.
func (Learners) Collections() []string { return []string{documents.Dashboards} }

// Listings implements Projector.
func (Learners) Listings() []string { return []string{documents.Rosters} }

// Indexes implements Projector.
func (Learners) Indexes() []readstore.Index {
	return []readstore.Index{
		{Coll: documents.Rosters, Fields: []string{"courseId", "enrolledAtN"}},
		{Coll: documents.Rosters, Fields: []string{"learnerId"}},
	}
}

// Refs implements Prefetcher: a learner event touches the learner's dashboard and roster entry.
func (Learners) Refs(e Event) []DocRef {
	var learnerID, courseID string
	switch ev := e.Data.(type) {
	case learner.Enrolled:
		learnerID, courseID = ev.LearnerID, ev.CourseID
		return []DocRef{{documents.Dashboards, learnerID}, {documents.Rosters, documents.RosterID(courseID, learnerID)},
			{learnersPeople, learnerID}, {learnersCourses, courseID}}
	case learner.Withdrawn:
		learnerID, courseID = ev.LearnerID, ev.CourseID
	case learner.ModuleCompleted:
		learnerID, courseID = ev.LearnerID, ev.CourseID
	case learner.CourseCompleted:
		learnerID, courseID = ev.LearnerID, ev.CourseID
	case learner.CertificateIssued:
		return []DocRef{{documents.Dashboards, ev.LearnerID}, {documents.Certificates, ev.CertificateID},
			{learnersPeople, ev.LearnerID}, {learnersCourses, ev.CourseID}}
	case user.Registered:
		return []DocRef{{learnersPeople, ev.UserID}, {documents.Dashboards, ev.UserID}}
	default:
		return nil
	}
	return []DocRef{{documents.Dashboards, learnerID}, {documents.Rosters, documents.RosterID(courseID, learnerID)}}
}

// Apply implements Projector.
func (p Learners) Apply(ctx context.Context, tx *Tx, e Event) error {
	switch ev := e.Data.(type) {
	case user.Registered:
		if err := putPerson(ctx, tx, learnersPeople, ev.UserID, person{Name: ev.Name, Role: string(ev.Role)}); err != nil {
			return err
		}
		if ev.Role != domain.Learner {
			return nil
		}
		var d documents.Dashboard
		if _, err := tx.Get(ctx, documents.Dashboards, ev.UserID, &d); err != nil {
			return err
		}
		d.LearnerID, d.Name = ev.UserID, ev.Name
		if d.Enrollments == nil {
			d.Enrollments = []documents.Enrollment{}
		}
		return tx.Put(documents.Dashboards, ev.UserID, d)
	case user.NameChanged:
		if err := putPerson(ctx, tx, learnersPeople, ev.UserID, person{Name: ev.Name}); err != nil {
			return err
		}
		var d documents.Dashboard
		ok, err := tx.Get(ctx, documents.Dashboards, ev.UserID, &d)
		if err != nil {
			return err
		}
		if ok {
			d.Name = ev.Name
			if err := tx.Put(documents.Dashboards, ev.UserID, d); err != nil {
				return err
			}
		}
		ids, err := tx.IDsWhere(ctx, documents.Rosters, "learnerId", ev.UserID)
		if err != nil {
			return err
		}
		return p.eachRoster(ctx, tx, ids, func(r *documents.RosterEntry) { r.Name = ev.Name })
	case course.Created:
		var c courseInfo
		if _, err := tx.Get(ctx, learnersCourses, ev.CourseID, &c); err != nil {
			return err
		}
		return tx.Put(learnersCourses, ev.CourseID, courseInfo{Title: ev.Title})
	case course.DetailsUpdated:
		var c courseInfo
		if _, err := tx.Get(ctx, learnersCourses, ev.CourseID, &c); err != nil {
			return err
		}
		if c.Title == ev.Title {
			return nil
		}
		c.Title = ev.Title
		if err := tx.Put(learnersCourses, ev.CourseID, c); err != nil {
			return err
		}
		return p.eachLearnerOf(ctx, tx, ev.CourseID, func(en *documents.Enrollment, _ *documents.RosterEntry) { en.Title = ev.Title })
	case course.ModuleAdded:
		var c courseInfo
		if _, err := tx.Get(ctx, learnersCourses, ev.CourseID, &c); err != nil {
			return err
		}
		c.ModuleCount++
		if err := tx.Put(learnersCourses, ev.CourseID, c); err != nil {
			return err
		}
		return p.eachLearnerOf(ctx, tx, ev.CourseID, func(en *documents.Enrollment, r *documents.RosterEntry) {
			en.ModuleCount = c.ModuleCount
			en.Progress = documents.Rate(len(en.CompletedModules), en.ModuleCount)
			r.Progress = en.Progress
		})
	case learner.Enrolled:
		return p.enroll(ctx, tx, e, ev)
	case learner.Withdrawn:
		return p.change(ctx, tx, ev.LearnerID, ev.CourseID, ev.At, func(en *documents.Enrollment) {
			en.Status = string(learner.StatusWithdrawn)
		})
	case learner.ModuleCompleted:
		return p.change(ctx, tx, ev.LearnerID, ev.CourseID, ev.At, func(en *documents.Enrollment) {
			if !slices.Contains(en.CompletedModules, ev.ModuleID) {
				en.CompletedModules = append(en.CompletedModules, ev.ModuleID)
			}
		})
	case learner.CourseCompleted:
		return p.change(ctx, tx, ev.LearnerID, ev.CourseID, ev.At, func(en *documents.Enrollment) {
			at := ev.At.UTC()
			en.Status, en.CompletedAt = string(learner.StatusCompleted), &at
		})
	case learner.CertificateIssued:
		return p.certify(ctx, tx, ev)
	}
	return nil
}

// certify shows the certificate on the learner's dashboard, and keeps it for verification with
// the name and title it was issued with: it attests a document, which does not change when a
// name does. Issuing is no activity of the learner's: lastActivityAt stays.
func (p Learners) certify(ctx context.Context, tx *Tx, ev learner.CertificateIssued) error {
	var d documents.Dashboard
	ok, err := tx.Get(ctx, documents.Dashboards, ev.LearnerID, &d)
	if err != nil {
		return err
	}
	if i := findEnrollment(d.Enrollments, ev.CourseID); ok && i >= 0 {
		d.Enrollments[i].Certificate = &documents.CertificateRef{ID: ev.CertificateID, IssuedAt: ev.At.UTC(),
			URL: documents.CertificatePath(ev.LearnerID, ev.CourseID)}
		if err := tx.Put(documents.Dashboards, ev.LearnerID, d); err != nil {
			return err
		}
	}
	var who person
	if _, err := tx.Get(ctx, learnersPeople, ev.LearnerID, &who); err != nil {
		return err
	}
	var c courseInfo
	if _, err := tx.Get(ctx, learnersCourses, ev.CourseID, &c); err != nil {
		return err
	}
	return tx.Put(documents.Certificates, ev.CertificateID, documents.Certificate{
		Verification:  documents.Verification{LearnerName: who.Name, CourseTitle: c.Title, CompletedAt: ev.CompletedAt.UTC(), SHA256: ev.SHA256},
		CertificateID: ev.CertificateID, LearnerID: ev.LearnerID, CourseID: ev.CourseID, BlobKey: ev.BlobKey, IssuedAt: ev.At.UTC()})
}

func (p Learners) enroll(ctx context.Context, tx *Tx, e Event, ev learner.Enrolled) error {
	var c courseInfo
	if _, err := tx.Get(ctx, learnersCourses, ev.CourseID, &c); err != nil {
		return err
	}
	var who person
	if _, err := tx.Get(ctx, learnersPeople, ev.LearnerID, &who); err != nil {
		return err
	}
	var d documents.Dashboard
	if _, err := tx.Get(ctx, documents.Dashboards, ev.LearnerID, &d); err != nil {
		return err
	}
	d.LearnerID, d.Name = ev.LearnerID, who.Name
	at := ev.At.UTC()
	i := findEnrollment(d.Enrollments, ev.CourseID)
	if i < 0 {
		d.Enrollments = append(d.Enrollments, documents.Enrollment{CourseID: ev.CourseID, EnrolledAt: at, CompletedModules: []string{}})
		i = len(d.Enrollments) - 1
	}
	en := &d.Enrollments[i]
	en.Title, en.ModuleCount, en.Status, en.LastActivityAt = c.Title, c.ModuleCount, string(learner.StatusActive), at
	en.Progress = documents.Rate(len(en.CompletedModules), en.ModuleCount)
	if err := tx.Put(documents.Dashboards, ev.LearnerID, d); err != nil {
		return err
	}
	var r documents.RosterEntry
	id := documents.RosterID(ev.CourseID, ev.LearnerID)
	if _, err := tx.Get(ctx, documents.Rosters, id, &r); err != nil {
		return err
	}
	r.RosterItem = rosterItem(ev.LearnerID, who.Name, *en)
	r.CourseID, r.EnrolledAtN = ev.CourseID, en.EnrolledAt.UnixNano()
	return tx.Put(documents.Rosters, id, r)
}

func rosterItem(learnerID, name string, en documents.Enrollment) documents.RosterItem {
	return documents.RosterItem{LearnerID: learnerID, Name: name, Status: en.Status, Progress: en.Progress,
		EnrolledAt: en.EnrolledAt, CompletedAt: en.CompletedAt}
}

func findEnrollment(ens []documents.Enrollment, courseID string) int {
	for i := range ens {
		if ens[i].CourseID == courseID {
			return i
		}
	}
	return -1
}

// change applies a learner event to the enrollment on the dashboard and to the roster entry.
func (p Learners) change(ctx context.Context, tx *Tx, learnerID, courseID string, at time.Time, fn func(*documents.Enrollment)) error {
	var d documents.Dashboard
	ok, err := tx.Get(ctx, documents.Dashboards, learnerID, &d)
	if err != nil || !ok {
		return err
	}
	i := findEnrollment(d.Enrollments, courseID)
	if i < 0 {
		return nil
	}
	en := &d.Enrollments[i]
	fn(en)
	en.Progress = documents.Rate(len(en.CompletedModules), en.ModuleCount)
	en.LastActivityAt = at.UTC()
	if err := tx.Put(documents.Dashboards, learnerID, d); err != nil {
		return err
	}
	var r documents.RosterEntry
	id := documents.RosterID(courseID, learnerID)
	if ok, err := tx.Get(ctx, documents.Rosters, id, &r); err != nil || !ok {
		return err
	}
	r.RosterItem = rosterItem(learnerID, d.Name, *en)
	return tx.Put(documents.Rosters, id, r)
}

// eachLearnerOf changes the enrollment of every learner of a course, on their dashboard and
// on the roster.
func (p Learners) eachLearnerOf(ctx context.Context, tx *Tx, courseID string, fn func(*documents.Enrollment, *documents.RosterEntry)) error {
	ids, err := tx.IDsWhere(ctx, documents.Rosters, "courseId", courseID)
	if err != nil {
		return err
	}
	if err := tx.Prefetch(ctx, documents.Rosters, ids); err != nil {
		return err
	}
	for _, id := range ids {
		var r documents.RosterEntry
		if ok, err := tx.Get(ctx, documents.Rosters, id, &r); err != nil || !ok {
			return err
		}
		var d documents.Dashboard
		ok, err := tx.Get(ctx, documents.Dashboards, r.LearnerID, &d)
		if err != nil {
			return err
		}
		if i := findEnrollment(d.Enrollments, courseID); ok && i >= 0 {
			fn(&d.Enrollments[i], &r)
			if err := tx.Put(documents.Dashboards, r.LearnerID, d); err != nil {
				return err
			}
		}
		if err := tx.Put(documents.Rosters, id, r); err != nil {
			return err
		}
	}
	return nil
}

func (p Learners) eachRoster(ctx context.Context, tx *Tx, ids []string, fn func(*documents.RosterEntry)) error {
	for _, id := range ids {
		var r documents.RosterEntry
		if ok, err := tx.Get(ctx, documents.Rosters, id, &r); err != nil || !ok {
			return err
		}
		fn(&r)
		if err := tx.Put(documents.Rosters, id, r); err != nil {
			return err
		}
	}
	return nil
}
