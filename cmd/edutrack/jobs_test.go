package main

import (
	"bytes"
	"database/sql"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/internal/testsmtp"
)

func TestServeSendsEnrollmentEmails(t *testing.T) {
	t.Parallel()
	srv := testsmtp.Start(t, testsmtp.Options{})
	dir := t.TempDir()
	s := launch(t, dir, &logTracker{}, map[string]string{"EDUTRACK_SMTP_URL": "smtp://" + srv.Addr(),
		"EDUTRACK_SMTP_FROM": "EduTrack <noreply@school.example>", "EDUTRACK_PUBLIC_URL": "https://learn.school.example/"},
		func(string) bool { return false })
	s.ok(s.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("ada", "Ada Lovelace", "learner")), created, 1)
	s.ok(s.do("POST", "/v1/courses", newCourse("go")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/modules", module("m1", "Intro")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/publish", nil), ok, 1)
	s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("ada")), created, 1)

	got := srv.WaitMessages(1, 20*time.Second)
	if diff := cmp.Diff([]string{"ada.lovelace@example.com"}, got[0].To); diff != "" {
		t.Errorf("recipients (-want +got):\n%s", diff)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	if id := msg.Header.Get("Message-Id"); !strings.HasPrefix(id, "<enrollment_email.") || !strings.HasSuffix(id, "@learn.school.example>") {
		t.Errorf("Message-ID %q: want one derived from the job", id)
	}
	body := string(got[0].Data)
	for _, want := range []string{"Subject: You are enrolled in Go", "Ada Lovelace", "https://learn.school.example/courses/go"} {
		if !strings.Contains(body, want) {
			t.Errorf("the email lacks %q:\n%s", want, body)
		}
	}
	s.stop()
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d emails; want 1", n)
	}
	if n := countJobs(t, dir); n != 1 {
		t.Errorf("%d jobs in jobs.db; want 1", n)
	}
}

func TestServeWithoutSMTPEnqueuesNoEmails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := start(t, dir, &logTracker{})
	s.ok(s.do("POST", "/v1/users", user("ins", "Grace Hopper", "instructor")), created, 1)
	s.ok(s.do("POST", "/v1/users", user("ada", "Ada Lovelace", "learner")), created, 1)
	s.ok(s.do("POST", "/v1/courses", newCourse("go")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/modules", module("m1", "Intro")), created, 1)
	s.ok(s.do("POST", "/v1/courses/go/publish", nil), ok, 1)
	s.ok(s.do("POST", "/v1/courses/go/enrollments", enrollment("ada")), created, 1)
	head := s.log.pos
	db := openJobs(t, dir)
	// The reactor passes the enrollment by, and enqueues nothing for it.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var pos uint64
		db.QueryRow(`SELECT position FROM reactor_checkpoints WHERE name = 'reactor'`).Scan(&pos)
		if pos >= head {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reactor's checkpoint is %d after 20s; want %d", pos, head)
		}
	}
	s.stop()
	if n := countJobs(t, dir); n != 0 {
		t.Errorf("%d jobs in jobs.db; want none", n)
	}
	if n := strings.Count(s.logs.String(), "enrollment emails are not enqueued"); n != 1 {
		t.Errorf("the log says %d times that emails are not enqueued; want once:\n%s", n, s.logs)
	}
}

func openJobs(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "jobs.db")+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func countJobs(t *testing.T, dir string) int {
	t.Helper()
	var n int
	if err := openJobs(t, dir).QueryRow(`SELECT count(*) FROM river_job`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSMTPSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	userFile, passFile := filepath.Join(dir, "user"), filepath.Join(dir, "pass")
	os.WriteFile(userFile, []byte("edutrack\n"), 0o600)
	os.WriteFile(passFile, []byte("s3cret\n"), 0o600)
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	cfg, err := loadConfig(nil, env(map[string]string{"EDUTRACK_SMTP_URL": "smtps://mail.school.example", "EDUTRACK_SMTP_FROM": "EduTrack <noreply@school.example>",
		"EDUTRACK_PUBLIC_URL": "https://learn.school.example/", "EDUTRACK_SMTP_USERNAME_FILE": userFile, "EDUTRACK_SMTP_PASSWORD_FILE": passFile}), &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.smtp == nil || cfg.smtp.username != "edutrack" || cfg.smtp.password != "s3cret" || cfg.smtp.publicURL.String() != "https://learn.school.example" {
		t.Errorf("smtp settings: %+v", cfg.smtp)
	}
	if cfg, err := loadConfig(nil, env(nil), &strings.Builder{}); err != nil || cfg.smtp != nil {
		t.Errorf("without EDUTRACK_SMTP_URL: %+v, %v; want no SMTP", cfg.smtp, err)
	}
	for name, tc := range map[string]struct {
		env     map[string]string
		wantErr []string
	}{
		"refuses an SMTP URL of another scheme, and asks for a sender and a public URL": {
			env:     map[string]string{"EDUTRACK_SMTP_URL": "http://mail.school.example"},
			wantErr: []string{"EDUTRACK_SMTP_URL", "EDUTRACK_SMTP_FROM", "EDUTRACK_PUBLIC_URL"},
		},
		"refuses credentials in the URL, a bad sender, a tls mode it does not know and a password alone": {
			env: map[string]string{"EDUTRACK_SMTP_URL": "smtp://u:p@mail.school.example?tls=maybe", "EDUTRACK_SMTP_FROM": "nobody",
				"EDUTRACK_PUBLIC_URL": "ftp://x", "EDUTRACK_SMTP_PASSWORD": "s3cret"},
			wantErr: []string{"EDUTRACK_SMTP_URL", "EDUTRACK_SMTP_FROM", "EDUTRACK_PUBLIC_URL", "EDUTRACK_SMTP_PASSWORD"},
		},
		"refuses a role it does not know": {
			env:     map[string]string{"EDUTRACK_ROLES": "react,mail"},
			wantErr: []string{"EDUTRACK_ROLES"},
		},
	} {
		_, err := loadConfig(nil, env(tc.env), &strings.Builder{})
		if err == nil {
			t.Errorf("%s: took it", name)
			continue
		}
		for _, want := range tc.wantErr {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: the error does not name %s: %v", name, want, err)
			}
		}
		if strings.Contains(err.Error(), ":p@") {
			t.Errorf("%s: the error shows the URL's password: %v", name, err)
		}
	}
	if cfg, err := loadConfig([]string{"--roles", "react,work"}, env(nil), &strings.Builder{}); err != nil || cfg.roles != (roles{react: true, work: true}) {
		t.Errorf("--roles react,work: %+v, %v", cfg.roles, err)
	}
}
