package smtpmail_test

import (
	"context"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edutrack/edutrack/internal/testsmtp"
	"github.com/edutrack/edutrack/reactors/email"
	"github.com/edutrack/edutrack/reactors/email/smtpmail"
)

func message() email.Message {
	return email.Message{ID: "enrollment_email.0b7e@school.example", To: mail.Address{Name: "Ada Lovelace", Address: "ada@school.example"},
		Subject: "You are enrolled in Go", Text: "Hello Ada, plain", HTML: "<p>Hello Ada, html</p>"}
}

func send(t *testing.T, srv *testsmtp.Server, url string, cfg smtpmail.Config) error {
	t.Helper()
	cfg.URL = url
	if cfg.From == "" {
		cfg.From = "EduTrack <noreply@school.example>"
	}
	cfg.RootCAs, cfg.Timeout = srv.Roots(), 5*time.Second
	m, err := smtpmail.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return m.Send(ctx, message())
}

func TestSend(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		server  testsmtp.Options
		url     string // with %s for the address
		wantTLS bool
		refused bool
	}{
		{"smtp_uses_STARTTLS_when_the_server_offers_it", testsmtp.Options{StartTLS: true}, "smtp://%s", true, false},
		{"smtp_sends_in_the_clear_when_the_server_offers_no_STARTTLS", testsmtp.Options{}, "smtp://%s", false, false},
		{"tls_required_uses_STARTTLS", testsmtp.Options{StartTLS: true}, "smtp://%s?tls=required", true, false},
		{"tls_required_refuses_a_server_without_STARTTLS", testsmtp.Options{}, "smtp://%s?tls=required", false, true},
		{"smtps_speaks_TLS_from_the_start", testsmtp.Options{ImplicitTLS: true}, "smtps://%s", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := testsmtp.Start(t, tc.server)
			err := send(t, srv, strings.Replace(tc.url, "%s", srv.Addr(), 1), smtpmail.Config{})
			if tc.refused {
				if err == nil {
					t.Fatal("sent; want a refusal")
				}
				if got := srv.Messages(); len(got) != 0 {
					t.Fatalf("the server got %d messages; want none", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := srv.WaitMessages(1, 5*time.Second)
			if got[0].TLS != tc.wantTLS {
				t.Errorf("over TLS: %v; want %v", got[0].TLS, tc.wantTLS)
			}
		})
	}
}

func TestSendWritesBothBodiesAndTheHeaders(t *testing.T) {
	t.Parallel()
	srv := testsmtp.Start(t, testsmtp.Options{StartTLS: true})
	if err := send(t, srv, "smtp://"+srv.Addr(), smtpmail.Config{}); err != nil {
		t.Fatal(err)
	}
	got := srv.WaitMessages(1, 5*time.Second)[0]
	if diff := cmp.Diff([]string{"ada@school.example"}, got.To); diff != "" {
		t.Errorf("recipients (-want +got):\n%s", diff)
	}
	if got.From != "noreply@school.example" {
		t.Errorf("envelope sender %q", got.From)
	}
	parts := testsmtp.Parse(t, got.Data)
	want := map[string]string{"Message-Id": "<enrollment_email.0b7e@school.example>", "Subject": "You are enrolled in Go",
		"text/plain": "Hello Ada, plain", "text/html": "<p>Hello Ada, html</p>", "To": `"Ada Lovelace" <ada@school.example>`}
	if diff := cmp.Diff(want, parts); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}
}

func TestSendLogsIn(t *testing.T) {
	t.Parallel()
	srv := testsmtp.Start(t, testsmtp.Options{StartTLS: true, Username: "edutrack", Password: "s3cret"})
	if err := send(t, srv, "smtp://"+srv.Addr(), smtpmail.Config{Username: "edutrack", Password: "wrong"}); err == nil {
		t.Fatal("sent with a wrong password")
	}
	if err := send(t, srv, "smtp://"+srv.Addr(), smtpmail.Config{Username: "edutrack", Password: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	srv.WaitMessages(1, 5*time.Second)
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]smtpmail.Endpoint{
		"smtp://mail.example":                  {Host: "mail.example", Port: 587},
		"smtp://mail.example:25":               {Host: "mail.example", Port: 25},
		"smtp://mail.example:587?tls=required": {Host: "mail.example", Port: 587, TLSRequired: true},
		"smtps://mail.example":                 {Host: "mail.example", Port: 465, SSL: true},
		"smtps://mail.example:2465":            {Host: "mail.example", Port: 2465, SSL: true},
	} {
		got, err := smtpmail.ParseURL(raw)
		if err != nil || got != want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	for _, raw := range []string{"http://mail.example", "smtp://", "smtp://user:pw@mail.example", "smtp://mail.example:0",
		"smtp://mail.example?tls=maybe", "smtps://mail.example?tls=required", "smtp://mail.example?starttls=1", "smtp://mail.example/x"} {
		if _, err := smtpmail.ParseURL(raw); err == nil {
			t.Errorf("ParseURL(%q) took it; want an error", raw)
		}
	}
}
