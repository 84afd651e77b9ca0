package main

import (
	"fmt"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var cmpFloats = cmpopts.EquateApprox(0, 1e-9)

func TestSink(t *testing.T) {
	sk, err := startSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sk.close()
	send := func(headers string) {
		t.Helper()
		msg := headers + "Subject: hello\r\n\r\nbody\r\n"
		if err := smtp.SendMail(sk.addr(), nil, "from@load.test", []string{"to@load.test"}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	send("Message-ID: <enrollment_email.e1@load.test>\r\n")
	send("Message-Id: <enrollment_email.e2@load.test>\r\n")
	send("Message-ID: <enrollment_email.e1@load.test>\r\n") // sent again: a duplicate
	send("Message-ID: <certificate.e3@load.test>\r\n")
	send("") // no Message-ID
	send("Message-ID: <nodot@load.test>\r\n")

	if got := sk.waitCount(kindEnrollmentEmail, 2, time.Second, time.Second, nil); got != 2 {
		t.Errorf("enrollment emails = %d, want 2", got)
	}
	arrivals, dups := sk.arrivals(kindEnrollmentEmail)
	if len(arrivals) != 2 || dups != 1 {
		t.Errorf("enrollment emails: %d distinct, %d duplicates; want 2 and 1", len(arrivals), dups)
	}
	if len(arrivals) == 2 && arrivals[1].Before(arrivals[0]) {
		t.Errorf("arrivals out of order: %v", arrivals)
	}
	if got := sk.count(kindCertificateEmail); got != 1 {
		t.Errorf("certificate emails = %d, want 1", got)
	}
	if got := sk.unreadable(); got != 2 {
		t.Errorf("unreadable = %d, want 2", got)
	}
	// A count that never comes ends at the timeout, or once nothing arrives for the stall, with
	// what arrived.
	if got := sk.waitCount(kindCertificateEmail, 5, 50*time.Millisecond, time.Minute, nil); got != 1 {
		t.Errorf("waitCount past its timeout = %d, want 1", got)
	}
	started := time.Now()
	if got := sk.waitCount(kindCertificateEmail, 5, time.Minute, 100*time.Millisecond, nil); got != 1 || time.Since(started) > 10*time.Second {
		t.Errorf("waitCount past its stall = %d after %s, want 1 within 10s", got, time.Since(started))
	}
}

func TestArrivalRates(t *testing.T) {
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	// 10 arrivals: the first 1 s after the start, then one every 100 ms, with a slow last one.
	var arrivals []time.Time
	for i := range 9 {
		arrivals = append(arrivals, at(1000+100*i))
	}
	arrivals = append(arrivals, at(3000))
	got := arrivalRates(arrivals, start, 12)
	// The 10th percentile is arrivals[1] (1.1 s), the 90th arrivals[8] (1.8 s): 7 in 0.7 s.
	want := rateReport{Want: 12, Got: 10, Seconds: 3, FromStart: 10.0 / 3, FirstToLast: 9.0 / 2, Steady: 7 / 0.7}
	if diff := cmp.Diff(want, got, cmpFloats); diff != "" {
		t.Errorf("rates (-want +got):\n%s", diff)
	}
	if got := arrivalRates(nil, start, 5); got != (rateReport{Want: 5}) {
		t.Errorf("no arrivals: %+v", got)
	}
}

func TestSampledRates(t *testing.T) {
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	// 7 counted before; 100 more wanted, 10 a sample every 100 ms from 0.5 s on.
	samples := []countSample{{at(0), 7}, {at(400), 7}}
	for i := 1; i <= 10; i++ {
		samples = append(samples, countSample{at(400 + 100*i), 7 + 10*i})
	}
	got := sampledRates(samples, 7, 100, start)
	// All 100 by 1.4 s; the first at 0.5 s (10 of them); the 10th at 0.5 s, the 90th at 1.3 s.
	want := rateReport{Want: 100, Got: 100, Seconds: 1.4, FromStart: 100 / 1.4, FirstToLast: 90 / 0.9, Steady: 80 / 0.8}
	if diff := cmp.Diff(want, got, cmpFloats); diff != "" {
		t.Errorf("rates (-want +got):\n%s", diff)
	}

	// Short of the count wanted: Got says so, and no later item is counted past want.
	short := sampledRates(samples[:7], 7, 100, start)
	if short.Got != 50 || short.Seconds != 0.9 {
		t.Errorf("short: got %d in %gs, want 50 in 0.9s", short.Got, short.Seconds)
	}
	if none := sampledRates(samples[:2], 7, 100, start); none.Got != 0 || none.FromStart != 0 {
		t.Errorf("none counted: %+v", none)
	}
}

func TestIdleLatencies(t *testing.T) {
	var took []time.Duration
	for i := 100; i >= 1; i-- { // out of order
		took = append(took, time.Duration(i)*time.Millisecond)
	}
	got := idleLatencies(took, 3)
	want := idleReport{Completions: 103, Missed: 3, P50: 50, P99: 99, Max: 100}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("idle (-want +got):\n%s", diff)
	}
	if took[0] != 100*time.Millisecond {
		t.Error("idleLatencies sorted its argument")
	}
}

func TestParseJobsSample(t *testing.T) {
	text := `# HELP edutrack_jobs Jobs in the queue by kind and state.
# TYPE edutrack_jobs gauge
edutrack_jobs{kind="certificate",state="completed"} 41
edutrack_jobs{kind="certificate",state="available"} 9
edutrack_jobs{kind="enrollment_email",state="completed"} 300
edutrack_jobs{state="completed",kind="certificate"} 1
process_cpu_seconds_total 12.5
`
	got, err := parseJobsSample(text)
	if err != nil {
		t.Fatal(err)
	}
	if got != (jobsSample{certificates: 42, cpu: 12.5}) {
		t.Errorf("sample = %+v, want 42 certificates and 12.5 s of CPU", got)
	}
	if _, err := parseJobsSample("edutrack_jobs{kind=\"certificate\"} x\n"); err == nil {
		t.Error("a value that is not a number: no error")
	}
}

func TestHasCertificate(t *testing.T) {
	dashboard := func(cert string) []byte {
		return fmt.Appendf(nil, `{"learnerId":"l1","enrollments":[`+
			`{"courseId":"other","certificate":{"id":"x"}},`+
			`{"courseId":"c1","certificate":%s}]}`, cert)
	}
	for _, tc := range []struct {
		name string
		body []byte
		want bool
	}{
		{"issued", dashboard(`{"id":"cert-1","issuedAt":"2026-12-03T12:00:00Z","url":"/v1/certificates/cert-1"}`), true},
		{"not yet issued", dashboard("null"), false},
		{"another course's only", []byte(`{"enrollments":[{"courseId":"other","certificate":{"id":"x"}}]}`), false},
		{"no certificate field", []byte(`{"enrollments":[{"courseId":"c1"}]}`), false},
		{"not JSON", []byte(`<html>`), false},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			if got := hasCertificate(tc.body, "c1"); got != tc.want {
				t.Errorf("hasCertificate = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCheckJobsFlags(t *testing.T) {
	cfg := config{smtpListen: "127.0.0.1:2525", jobsEmails: 100, jobsCertificates: 60, jobsIdle: 40}
	if p := checkJobsFlags(cfg); len(p) != 0 {
		t.Errorf("valid flags: %v", p)
	}
	cfg.jobsIdle = 41
	if p := checkJobsFlags(cfg); len(p) != 1 {
		t.Errorf("more learners than enrolled: %v", p)
	}
	cfg = config{smtpListen: "", jobsEmails: 0, jobsCertificates: 0}
	if p := checkJobsFlags(cfg); len(p) != 2 {
		t.Errorf("empty -smtp-listen and no learners: %v", p)
	}
}
