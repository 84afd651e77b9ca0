package certificate_test

import (
	"testing"

	"github.com/edutrack/edutrack/reactors/certificate"
)

// BenchmarkRender is one certificate's PDF, compressed as the job writes it: the part of a
// certificate's cost that is EduTrack's own, beside the blob write and the command.
// A name Windows-1252 writes keeps the core font; one it cannot embeds the Go fonts.
func BenchmarkRender(b *testing.B) {
	for name, learner := range map[string]string{"core_font": "Zoë Lovelace", "embedded_font": "Łukasz Дмитриев"} {
		c := certificate.Content{CertificateID: "c1", LearnerName: learner, CourseTitle: "Go & You", Instructor: "Grace Hopper",
			CompletedAt: completedAt, VerificationURL: "https://school.example/v1/certificates/c1"}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := certificate.Render(c, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
