package commands_test

import (
	"context"
	"strings"
	"testing"

	"github.com/edutrack/edutrack/commands"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/domain/learner"
)

var digest = strings.Repeat("0f", 32)

func issueCertificate(certificateID string) action {
	return func(ctx context.Context, h *commands.Handler, m commands.Meta) (answer, error) {
		return plain(h.IssueCertificate(ctx, m, commands.IssueCertificate{LearnerID: "ada", CourseID: "go",
			CertificateID: certificateID, BlobKey: "certificates/" + certificateID + "/" + digest + ".pdf", SHA256: digest}))
	}
}

func TestIssueCertificate(t *testing.T) {
	runCases(t, []commandCase{
		{
			name:   "issues the certificate of a completed course",
			given:  adaCompletedTheCourse(),
			when:   issueCertificate("cert-1"),
			stream: "learner-ada",
			then: []domain.Event{learner.CertificateIssued{LearnerID: "ada", CourseID: "go", CertificateID: "cert-1",
				BlobKey: "certificates/cert-1/" + digest + ".pdf", SHA256: digest, CompletedAt: t0, At: t1}},
			id: "ada",
		},
		{
			name:   "changes nothing when the certificate was issued",
			given:  append(adaCompletedTheCourse(), issueCertificate("cert-1")),
			when:   issueCertificate("cert-1"),
			stream: "learner-ada",
			id:     "ada",
		},
		{
			name:   "refuses a second certificate of the course",
			given:  append(adaCompletedTheCourse(), issueCertificate("cert-1")),
			when:   issueCertificate("cert-2"),
			stream: "learner-ada",
			err:    learner.ErrCertificateAlreadyIssued, kind: domain.Conflict,
		},
		{
			name:   "refuses a course in progress",
			given:  append(adaEnrolled(), complete("ada", "go", "m1")),
			when:   issueCertificate("cert-1"),
			stream: "learner-ada",
			err:    learner.ErrCourseNotCompleted, kind: domain.Conflict,
		},
		{
			name:   "refuses any caller: only EduTrack issues certificates",
			given:  adaCompletedTheCourse(),
			when:   issueCertificate("cert-1"),
			stream: "learner-ada",
			caller: domain.Actor{UserID: "root", Role: domain.Admin},
			err:    commands.ErrForbidden, kind: domain.Forbidden,
		},
	})
}

func TestIssueCertificateRetriedByTheSameJob(t *testing.T) {
	e := newEnv(t, commands.Options{})
	e.do(e.h, adaCompletedTheCourse()...)
	m := meta()
	first, err := issueCertificate("cert-1")(context.Background(), e.h, m)
	if err != nil {
		t.Fatal(err)
	}
	// A handler with a cold cache, as in the process that runs the job again after a crash.
	again, err := issueCertificate("cert-1")(context.Background(), e.handler(e.store, commands.Options{}), m)
	if err != nil {
		t.Fatal(err)
	}
	if again.Version != first.Version || again.Position != first.Position {
		t.Errorf("retry answered %+v, want the first answer %+v", again.Result, first.Result)
	}
	if n := len(e.read("learner-ada")); uint64(n) != first.Version {
		t.Errorf("stream has %d events, want %d", n, first.Version)
	}
}
