package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/quotedprintable"
	"net/http"
	netmail "net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/testsmtp"
)

// A course completed through the API gets its certificate: on the dashboard, as a PDF for the
// learner, the course's instructor and admins, verified by anyone, and announced by email.
func TestServeIssuesCertificates(t *testing.T) {
	t.Parallel()
	srv := testsmtp.Start(t, testsmtp.Options{})
	dir := filepath.Join(t.TempDir(), "data")
	s := launch(t, dir, &logTracker{}, map[string]string{"EDUTRACK_CERTIFICATES": "on", "EDUTRACK_SMTP_URL": "smtp://" + srv.Addr(),
		"EDUTRACK_SMTP_FROM": "EduTrack <noreply@school.example>", "EDUTRACK_PUBLIC_URL": "https://learn.school.example/"},
		func(string) bool { return false })
	s.ok(s.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("ins2", "Alan Turing", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("ada", "Ada Lovelace", "learner")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("bob", "Bob Smith", "learner")), created, 1)
	s.ok(s.do("POST", "/v1/courses", newCourse("go")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/modules", module("m1", "Intro")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/publish", nil), ok, 1)
	s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("ada")), created, 1)
	done := s.ok(s.do("POST", completePath("ada", "go", "m1"), nil), ok, 2)

	var cert struct {
		ID  string `json:"id"`
		URL string `json:"url"`
	}
	for deadline := time.Now().Add(30 * time.Second); cert.ID == ""; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no certificate on ada's dashboard after 30s\n%s", s.logs)
		}
		var d struct {
			Enrollments []struct {
				Certificate *struct {
					ID  string `json:"id"`
					URL string `json:"url"`
				} `json:"certificate"`
			} `json:"enrollments"`
		}
		a := get(t, s, "/v1/learners/ada/dashboard?minPosition="+itoa(done.Position))
		if err := json.Unmarshal(a.body, &d); err != nil || a.status != http.StatusOK || len(d.Enrollments) != 1 {
			t.Fatalf("ada's dashboard: %d %s (%v)", a.status, a.body, err)
		}
		if c := d.Enrollments[0].Certificate; c != nil {
			cert.ID, cert.URL = c.ID, c.URL
		}
	}
	if cert.URL != "/v1/learners/ada/certificates/go" {
		t.Errorf("the certificate's url is %q", cert.URL)
	}

	pdf := get(t, s, cert.URL) // as ada
	sum := sha256.Sum256(pdf.body)
	digest := hex.EncodeToString(sum[:])
	if pdf.status != http.StatusOK || pdf.header.Get("Content-Type") != "application/pdf" || pdf.header.Get("ETag") != `"`+digest+`"` ||
		!strings.HasPrefix(string(pdf.body), "%PDF-") {
		t.Fatalf("GET %s: %d %v, %d bytes; want the PDF, its digest as ETag", cert.URL, pdf.status, pdf.header, len(pdf.body))
	}
	if a := get(t, s, cert.URL, "If-None-Match", pdf.header.Get("ETag")); a.status != http.StatusNotModified || len(a.body) != 0 {
		t.Errorf("GET %s with its ETag: %d, %d bytes; want 304", cert.URL, a.status, len(a.body))
	}
	head, err := http.NewRequest(http.MethodHead, s.base+cert.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := s.client.Do(head); err != nil || resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(pdf.body)) ||
		resp.Header.Get("ETag") != pdf.header.Get("ETag") {
		t.Errorf("HEAD %s: %v %v; want 200 with the GET's length and ETag", cert.URL, resp, err)
	} else {
		resp.Body.Close()
	}
	for _, tc := range []struct {
		sub    string
		role   domain.Role
		status int
	}{
		{"ins", domain.Instructor, http.StatusOK},
		{testAdmin, domain.Admin, http.StatusOK},
		{"ins2", domain.Instructor, http.StatusNotFound},
		{"bob", domain.Learner, http.StatusNotFound},
		{"aud", domain.Auditor, http.StatusNotFound},
	} {
		if a := get(t, s, cert.URL, "Authorization", bearer(tc.sub, tc.role)); a.status != tc.status {
			t.Errorf("GET %s as %s: %d; want %d", cert.URL, tc.sub, a.status, tc.status)
		}
	}

	// The verification takes no token.
	resp, err := http.Get(s.base + "/v1/certificates/" + cert.ID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("verify: %d %s", resp.StatusCode, body)
	}
	completedAt, _ := v["completedAt"].(string)
	delete(v, "completedAt")
	if diff := cmp.Diff(map[string]any{"learnerName": "Ada Lovelace", "courseTitle": "Go", "sha256": digest}, v); diff != "" || completedAt == "" {
		t.Errorf("the verification (-want +got):\n%s\ncompletedAt %q", diff, completedAt)
	}

	// The enrollment's email, and the certificate's.
	var text, id string
	for _, m := range srv.WaitMessages(2, 30*time.Second) {
		msg, err := netmail.ReadMessage(bytes.NewReader(m.Data))
		if err != nil {
			t.Fatal(err)
		}
		if msg.Header.Get("Subject") == "Your certificate for Go" {
			decoded, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
			text, id = string(decoded), msg.Header.Get("Message-Id")
		}
	}
	if !strings.Contains(text, "https://learn.school.example/v1/certificates/"+cert.ID) {
		t.Errorf("the certificate's email lacks its verification link:\n%s", text)
	}
	if !strings.HasPrefix(id, "<certificate.") || !strings.HasSuffix(id, "@learn.school.example>") {
		t.Errorf("Message-ID %q: want one derived from the job", id)
	}
	err = filepath.WalkDir(filepath.Join(dir, "blobs"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if want := os.FileMode(0o600); err == nil && (d.IsDir() && info.Mode().Perm() != 0o700 || !d.IsDir() && info.Mode().Perm() != want) {
			t.Errorf("%s has mode %v; want it its owner's alone", path, info.Mode().Perm())
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
	s.stop()
	if n := len(srv.Messages()); n != 2 {
		t.Errorf("%d emails; want 2", n)
	}
}
