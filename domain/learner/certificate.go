package learner

import (
	"time"

	"github.com/edutrack/edutrack/domain"
)

var (
	// ErrCourseNotCompleted is returned by IssueCertificate when the learner has not completed
	// the course: a certificate attests a completion.
	ErrCourseNotCompleted = domain.Errorf(domain.Conflict, "the learner has not completed this course")
	// ErrCertificateAlreadyIssued is returned by IssueCertificate when the learner already holds
	// another certificate of the course. A course is completed once, so it has one certificate;
	// a second id means a second job for one completion, which must not mint a second document.
	ErrCertificateAlreadyIssued = domain.Errorf(domain.Conflict, "a certificate of this course was already issued")
)

// Certificate is the document that attests a completion, as the worker that rendered and
// stored it describes it.
type Certificate struct {
	// ID is derived from the completion it attests, so a retried job names the same one.
	ID string
	// BlobKey is where the PDF is kept in blob storage.
	BlobKey string
	// SHA256 is the PDF's digest, in lower-case hex.
	SHA256 string
}

// IssueCertificate records that the learner received certificate c of courseID, which they
// completed. Issuing the same certificate again changes nothing, so a retried job is safe,
// whatever it rendered the second time (the first PDF stands). It returns an Invalid error on
// "certificateId", "blobKey" or "sha256", ErrNotEnrolled, ErrCourseNotCompleted or
// ErrCertificateAlreadyIssued.
func (l *Learner) IssueCertificate(courseID string, c Certificate, at time.Time) error {
	if !domain.ValidID(c.ID) {
		return domain.Invalidf("certificateId", "must be 1 to 64 characters of a-z, 0-9 and -")
	}
	if c.BlobKey == "" || len(c.BlobKey) > 1024 {
		return domain.Invalidf("blobKey", "must be 1 to 1024 bytes")
	}
	if !isSHA256(c.SHA256) {
		return domain.Invalidf("sha256", "must be 64 lower-case hex digits")
	}
	en, ok := l.enrollments[courseID]
	if !ok {
		return ErrNotEnrolled
	}
	switch {
	case en.CertificateID == c.ID:
		return nil
	case en.CertificateID != "":
		return ErrCertificateAlreadyIssued
	case en.Status != StatusCompleted:
		return ErrCourseNotCompleted
	}
	l.record(CertificateIssued{LearnerID: l.id, CourseID: courseID, CertificateID: c.ID, BlobKey: c.BlobKey,
		SHA256: c.SHA256, CompletedAt: en.CompletedAt, At: at})
	return nil
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
