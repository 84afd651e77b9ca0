package learner_test

import (
	"strings"
	"testing"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
)

var certificate = learner.Certificate{ID: "cert-1", BlobKey: "certificates/cert-1/" + strings.Repeat("ab", 32) + ".pdf",
	SHA256: strings.Repeat("ab", 32)}

func issue(courseID string, c learner.Certificate) func(*attempt) error {
	return func(a *attempt) error { return a.IssueCertificate(courseID, c, t3) }
}

func issued(c learner.Certificate) learner.CertificateIssued {
	return learner.CertificateIssued{LearnerID: id, CourseID: courseID, CertificateID: c.ID, BlobKey: c.BlobKey, SHA256: c.SHA256,
		CompletedAt: t2, At: t3}
}

func TestIssueCertificate(t *testing.T) {
	completed := []domain.Event{enrolled(t0), moduleCompleted("intro", t1), moduleCompleted("types", t2), courseCompleted(t2)}
	with := func(change func(*learner.Certificate)) learner.Certificate {
		c := certificate
		change(&c)
		return c
	}
	run(t, []testCase{
		{
			Name:  "issues the certificate of a completed course, attesting the completion's date",
			Given: completed,
			When:  issue(courseID, certificate),
			Then:  []domain.Event{issued(certificate)},
		},
		{
			Name:  "changes nothing when the same certificate is issued again",
			Given: append(completed, issued(certificate)),
			When:  issue(courseID, certificate),
		},
		{
			Name:  "changes nothing when a retry rendered other bytes for the same certificate: the first stands",
			Given: append(completed, issued(certificate)),
			When:  issue(courseID, with(func(c *learner.Certificate) { c.SHA256 = strings.Repeat("cd", 32) })),
		},
		{
			Name:  "refuses a second certificate of one completion",
			Given: append(completed, issued(certificate)),
			When:  issue(courseID, with(func(c *learner.Certificate) { c.ID = "cert-2" })),
			Err:   learner.ErrCertificateAlreadyIssued, Kind: domain.Conflict,
		},
		{
			Name:  "refuses a course in progress",
			Given: []domain.Event{enrolled(t0), moduleCompleted("intro", t1)},
			When:  issue(courseID, certificate),
			Err:   learner.ErrCourseNotCompleted, Kind: domain.Conflict,
		},
		{
			Name:  "refuses a course the learner withdrew from",
			Given: []domain.Event{enrolled(t0), withdrawn(t1)},
			When:  issue(courseID, certificate),
			Err:   learner.ErrCourseNotCompleted, Kind: domain.Conflict,
		},
		{
			Name: "refuses a course the learner never enrolled in",
			When: issue(courseID, certificate),
			Err:  learner.ErrNotEnrolled, Kind: domain.Conflict,
		},
		{
			Name: "refuses a certificate id that is no id", Given: completed,
			When: issue(courseID, with(func(c *learner.Certificate) { c.ID = "Cert 1" })),
			Kind: domain.Invalid, Field: "certificateId",
		},
		{
			Name: "refuses a certificate without a blob key", Given: completed,
			When: issue(courseID, with(func(c *learner.Certificate) { c.BlobKey = "" })),
			Kind: domain.Invalid, Field: "blobKey",
		},
		{
			Name: "refuses a digest that is not SHA-256 in hex", Given: completed,
			When: issue(courseID, with(func(c *learner.Certificate) { c.SHA256 = "ABCD" })),
			Kind: domain.Invalid, Field: "sha256",
		},
	})
}
