package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// jobsReport is the jobs phase's numbers. Rates are per second: FromStart from the first command
// sent to the last arrival, FirstToLast between the first and the last arrival, Steady between
// the arrivals of the 10th and the 90th percentile, which leaves out the start and the tail.
type jobsReport struct {
	Emails       rateReport `json:"enrollmentEmails"`
	EmailDups    int        `json:"enrollmentEmailDuplicates"`
	EnrollRate   float64    `json:"enrollCommandsPerSecond"`
	CompleteRate float64    `json:"completeCommandsPerSecond"`
	Certificates rateReport `json:"certificates"`
	CertEmails   int        `json:"certificateEmails"`
	CertEmailDup int        `json:"certificateEmailDuplicates"`
	ServerCores  float64    `json:"serverCoresDuringCertificates"`
	Idle         idleReport `json:"idle"`
	Unreadable   int        `json:"emailsWithoutMessageID"`
	CommandErrs  int64      `json:"commandErrors"`
	FirstError   string     `json:"firstError,omitempty"`
}

// rateReport is how many of Want arrived, and how fast.
type rateReport struct {
	Want        int     `json:"want"`
	Got         int     `json:"got"`
	FromStart   float64 `json:"fromStartPerSecond"`
	FirstToLast float64 `json:"firstToLastPerSecond"`
	Steady      float64 `json:"steadyPerSecond"`
	Seconds     float64 `json:"seconds"`
}

// idleReport is the time from a completion's answer to its certificate on the dashboard, one
// completion at a time.
type idleReport struct {
	Completions int     `json:"completions"`
	Missed      int     `json:"missed"`
	P50         float64 `json:"p50Ms"`
	P99         float64 `json:"p99Ms"`
	Max         float64 `json:"maxMs"`
}

// arrivalRates are the rates of arrivals, each at its instant, in order, of want items whose
// first command was sent at start.
func arrivalRates(arrivals []time.Time, start time.Time, want int) rateReport {
	r := rateReport{Want: want, Got: len(arrivals)}
	n := len(arrivals)
	if n == 0 {
		return r
	}
	last := arrivals[n-1]
	r.Seconds = last.Sub(start).Seconds()
	r.FromStart = perSecond(n, last.Sub(start))
	if n >= 2 {
		r.FirstToLast = perSecond(n-1, last.Sub(arrivals[0]))
	}
	i, j := n/10, (9*n+9)/10-1
	if j > i {
		r.Steady = perSecond(j-i, arrivals[j].Sub(arrivals[i]))
	}
	return r
}

// sampledRates are the rates of want items counted by samples, in order, of a count that stood
// at base before the first command was sent at start. Instants are those of the samples, so
// they are late by up to the time between two.
func sampledRates(samples []countSample, base, want int, start time.Time) rateReport {
	r := rateReport{Want: want}
	if len(samples) == 0 {
		return r
	}
	// reached is the first sample with at least k items counted.
	reached := func(k int) (countSample, bool) {
		for _, s := range samples {
			if s.n-base >= k {
				return s, true
			}
		}
		return countSample{}, false
	}
	last := samples[len(samples)-1]
	r.Got = min(last.n-base, want)
	end, ok := reached(r.Got)
	if r.Got <= 0 || !ok {
		return r
	}
	r.Seconds = end.at.Sub(start).Seconds()
	r.FromStart = perSecond(r.Got, end.at.Sub(start))
	if first, ok := reached(1); ok && end.at.After(first.at) {
		r.FirstToLast = perSecond(end.n-first.n, end.at.Sub(first.at))
	}
	lo, ok1 := reached(max(1, want/10))
	hi, ok2 := reached((9*want + 9) / 10)
	if ok1 && ok2 && hi.at.After(lo.at) {
		r.Steady = perSecond(hi.n-lo.n, hi.at.Sub(lo.at))
	}
	return r
}

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// idleLatencies summarises the idle completions' times.
func idleLatencies(took []time.Duration, missed int) idleReport {
	r := idleReport{Completions: len(took) + missed, Missed: missed}
	if len(took) == 0 {
		return r
	}
	s := slices.Clone(took)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return ms(s[max(0, min(i, len(s)-1))].Microseconds())
	}
	r.P50, r.P99, r.Max = at(0.50), at(0.99), ms(s[len(s)-1].Microseconds())
	return r
}

func (r *report) addJobsPhase(w io.Writer, res *jobsResult, unreadable int) {
	j := &jobsReport{
		Emails:       arrivalRates(res.emails, res.enrollSent, res.enrolled),
		EmailDups:    res.emailDups,
		EnrollRate:   perSecond(res.enrolled, res.enrollAcked.Sub(res.enrollSent)),
		CompleteRate: perSecond(r.cfg.jobsCertificates, res.completeAcked.Sub(res.completeSent)),
		Certificates: sampledRates(res.certSamples, res.certStart, r.cfg.jobsCertificates, res.completeSent),
		CertEmails:   res.certEmails,
		CertEmailDup: res.certEmailDups,
		Idle:         idleLatencies(res.idle, res.idleMissed),
		Unreadable:   unreadable,
		CommandErrs:  res.commandErrors,
		FirstError:   res.firstError,
	}
	if d := res.cpuDone.Sub(res.cpuAt); d > 0 && res.cpuAfter >= res.cpuBefore {
		j.ServerCores = (res.cpuAfter - res.cpuBefore) / d.Seconds()
	}
	r.Phases = append(r.Phases, phaseReport{Name: phaseJobs, Ops: map[string]int64{}, Jobs: j})

	fmt.Fprintf(w, "\n%s\n", r.title(phaseJobs))
	fmt.Fprintf(w, "  enrollment emails  %d of %d arrived in %.2fs (enrollments sent at %.0f/s), %d duplicate Message-IDs\n",
		j.Emails.Got, j.Emails.Want, j.Emails.Seconds, j.EnrollRate, j.EmailDups)
	fmt.Fprintf(w, "                     %.0f/s from the first enrollment, %.0f/s first to last, %.0f/s steady (10th-90th percentile)\n",
		j.Emails.FromStart, j.Emails.FirstToLast, j.Emails.Steady)
	fmt.Fprintf(w, "  certificates       %d of %d issued in %.2fs (completions sent at %.0f/s; jobs completed, read from /metrics every %s)\n",
		j.Certificates.Got, j.Certificates.Want, j.Certificates.Seconds, j.CompleteRate, metricsEvery)
	fmt.Fprintf(w, "                     %.0f/s from the first completion, %.0f/s first to last, %.0f/s steady (10th-90th percentile)\n",
		j.Certificates.FromStart, j.Certificates.FirstToLast, j.Certificates.Steady)
	fmt.Fprintf(w, "                     server CPU %.2f cores meanwhile; %d congratulation emails, %d duplicate Message-IDs\n",
		j.ServerCores, j.CertEmails, j.CertEmailDup)
	fmt.Fprintf(w, "  idle, one at a time  completion answered to certificate on the dashboard: p50 %.1fms  p99 %.1fms  max %.1fms  (%d completions, %d not shown within %s)\n",
		j.Idle.P50, j.Idle.P99, j.Idle.Max, j.Idle.Completions, j.Idle.Missed, jobsWait)
	if j.CommandErrs > 0 {
		fmt.Fprintf(w, "  errors             %d commands failed; first: %s\n", j.CommandErrs, j.FirstError)
	}
	if unreadable > 0 {
		fmt.Fprintf(w, "  unreadable         %d emails without a Message-ID of the form kind.id\n", unreadable)
	}
}

// jobsFailures are the jobs phase's failures: failed commands, emails or certificates that did
// not arrive, emails that arrived twice.
func jobsFailures(j *jobsReport) error {
	switch {
	case j.CommandErrs > 0:
		return fmt.Errorf("jobs phase: %d commands failed; first: %s", j.CommandErrs, j.FirstError)
	case j.Emails.Got < j.Emails.Want:
		return fmt.Errorf("jobs phase: %d of %d enrollment emails arrived within %s", j.Emails.Got, j.Emails.Want, jobsWait)
	case j.Certificates.Got < j.Certificates.Want:
		return fmt.Errorf("jobs phase: %d of %d certificates issued within %s", j.Certificates.Got, j.Certificates.Want, jobsWait)
	case j.Idle.Missed > 0:
		return fmt.Errorf("jobs phase: %d of %d idle certificates not shown within %s", j.Idle.Missed, j.Idle.Completions, jobsWait)
	case j.EmailDups > 0 || j.CertEmailDup > 0:
		return fmt.Errorf("jobs phase: %d enrollment and %d certificate emails arrived twice", j.EmailDups, j.CertEmailDup)
	}
	return nil
}
