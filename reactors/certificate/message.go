package certificate

import (
	"bytes"
	"embed"
	htmltemplate "html/template"
	texttemplate "text/template"

	"github.com/edutrack/edutrack/reactors/email"
)

//go:embed templates
var templateFiles embed.FS

var (
	textTemplates = texttemplate.Must(texttemplate.ParseFS(templateFiles, "templates/*.txt"))
	htmlTemplates = htmltemplate.Must(htmltemplate.ParseFS(templateFiles, "templates/*.html"))
)

// message is the congratulation email of certificate certID. Its Message-ID follows from the
// job, so a copy sent again after a crash carries the same one.
func (w *Worker) message(kind string, a Args, certID string, f facts) (email.Message, error) {
	subject := "Your certificate for " + f.courseTitle
	data := map[string]any{"LearnerName": f.learner.Name, "CourseTitle": f.courseTitle, "Subject": subject,
		"Dashboard": w.publicURL.JoinPath("learners", a.LearnerID, "dashboard").String(),
		"Verify":    w.VerificationURL(certID), "CertificateID": certID}
	var text, html bytes.Buffer
	if err := textTemplates.ExecuteTemplate(&text, "certificate.txt", data); err != nil {
		return email.Message{}, err
	}
	if err := htmlTemplates.ExecuteTemplate(&html, "certificate.html", data); err != nil {
		return email.Message{}, err
	}
	return email.Message{ID: email.MessageID(kind, a.EventID, w.publicURL.Hostname()), To: f.learner, Subject: subject,
		Text: text.String(), HTML: html.String()}, nil
}
