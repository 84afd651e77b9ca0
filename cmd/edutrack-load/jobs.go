package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// The kinds of the emails the jobs phase counts: the part of their Message-ID before the first
// '.', as the server writes it.
const (
	kindEnrollmentEmail  = "enrollment_email"
	kindCertificateEmail = "certificate"
)

// jobsWait bounds each wait of the jobs phase for emails or certificates to arrive, and
// jobsStall ends it sooner once none has arrived for that long: longer than the server's first
// retry of a failed email (30 s).
const (
	jobsWait  = 3 * time.Minute
	jobsStall = 45 * time.Second
)

// metricsEvery is how often the jobs phase reads the certificate jobs completed from /metrics.
const metricsEvery = 50 * time.Millisecond

// idlePoll is how often the idle part of the jobs phase reads the dashboard, and idleGap the
// pause between two of its completions, so each finds the server idle.
const (
	idlePoll = 5 * time.Millisecond
	idleGap  = 100 * time.Millisecond
)

// jobsModules is how many modules the jobs phase's course has: the setup completes all but the
// last, and the measured command the last one, which completes the course.
const jobsModules = 2

// jobsFixture is the data of the jobs phase: its own instructor, one course and its learners,
// the first -jobs-certificates of them for the burst, the next -jobs-idle for the idle part.
type jobsFixture struct {
	fx       fixture // the instructor, the course and its modules, as setup's helpers take them
	course   string
	learners []string
}

func newJobsFixture(cfg config) jobsFixture {
	p := cfg.prefix + "-j"
	jf := jobsFixture{course: p + "-c001"}
	jf.fx = fixture{instructor: p + "-instructor", courses: []string{jf.course}}
	for i := range jobsModules {
		jf.fx.modules = append(jf.fx.modules, fmt.Sprintf("m%03d", i+1))
	}
	for i := range cfg.jobsEmails {
		jf.learners = append(jf.learners, fmt.Sprintf("%s-l%05d", p, i+1))
	}
	return jf
}

func (jf jobsFixture) completePath(learner, module string) string {
	return "/v1/learners/" + learner + "/courses/" + jf.course + "/modules/" + module + "/complete"
}

// jobsResult is what the jobs phase measured.
type jobsResult struct {
	enrolled                    int
	enrollSent, enrollAcked     time.Time
	emails                      []time.Time
	emailDups                   int
	completeSent, completeAcked time.Time
	certStart                   int // certificate jobs completed before the burst
	certSamples                 []countSample
	certEmails                  int
	certEmailDups               int
	cpuBefore, cpuAfter         float64
	cpuAt, cpuDone              time.Time
	idle                        []time.Duration
	idleMissed                  int
	commandErrors               int64
	firstError                  string
}

// countSample is a count read at an instant.
type countSample struct {
	at time.Time
	n  int
}

// runJobsPhase runs the jobs phase against api, with the server's emails going to the sink the
// phase starts on -smtp-listen, and reports it.
func runJobsPhase(ctx context.Context, stdout io.Writer, rep *report, api *api, cfg config) error {
	sk, err := startSink(cfg.smtpListen)
	if err != nil {
		return err
	}
	defer sk.close()
	jf := newJobsFixture(cfg)
	for _, id := range []string{jf.fx.instructor, jf.learners[len(jf.learners)-1]} {
		if !idPattern.MatchString(id) {
			return fmt.Errorf("id %q does not match %s: shorten -prefix", id, idPattern)
		}
	}
	started := time.Now()
	if err := jobsSetup(ctx, api, jf); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	fmt.Fprintf(stdout, "\njobs setup: 1 course of %d modules, %d learners registered in %.1fs; SMTP sink on %s\n",
		jobsModules, len(jf.learners), time.Since(started).Seconds(), sk.addr())

	res := &jobsResult{}
	var errs commandErrors
	// Emails: every learner enrolls in the course, and each enrollment mails them.
	res.enrollSent = time.Now()
	forEach(ctx, cfg.clients, jf.learners, func(ctx context.Context, id string) {
		_, err := api.command(ctx, "/v1/courses/"+jf.course+"/enrollments", mustJSON(enrollment{LearnerID: id}))
		errs.see(err)
	})
	res.enrollAcked = time.Now()
	res.enrolled = len(jf.learners)
	sk.waitCount(kindEnrollmentEmail, len(jf.learners), jobsWait, jobsStall, ctx.Done())
	res.emails, res.emailDups = sk.arrivals(kindEnrollmentEmail)

	// Certificates: the burst's and the idle part's learners complete every module but the last,
	// unmeasured.
	burst := jf.learners[:cfg.jobsCertificates]
	idle := jf.learners[cfg.jobsCertificates : cfg.jobsCertificates+cfg.jobsIdle]
	var last position
	forEach(ctx, cfg.clients, jf.learners[:cfg.jobsCertificates+cfg.jobsIdle], func(ctx context.Context, id string) {
		for _, m := range jf.fx.modules[:jobsModules-1] {
			pos, err := api.command(ctx, jf.completePath(id, m), nil)
			last.see(pos)
			errs.see(err)
		}
	})
	if err := settle(ctx, api, jf.fx, last.get()); err != nil {
		return err
	}

	// The burst: every one of its learners completes the last module at once; the certificates
	// are counted from the server's jobs, completed once the certificate is recorded.
	before, err := scrapeJobs(ctx, api)
	if err != nil {
		return fmt.Errorf("read /metrics: %w", err)
	}
	res.certStart, res.cpuBefore, res.cpuAt = before.certificates, before.cpu, time.Now()
	want := res.certStart + len(burst)
	samples := make(chan []countSample, 1)
	pctx, stopPoll := context.WithCancel(ctx)
	go func() { samples <- pollCertificates(pctx, api, want) }()
	res.completeSent = time.Now()
	lastModule := jf.fx.modules[jobsModules-1]
	forEach(ctx, cfg.clients, burst, func(ctx context.Context, id string) {
		_, err := api.command(ctx, jf.completePath(id, lastModule), nil)
		errs.see(err)
	})
	res.completeAcked = time.Now()
	res.certSamples = <-samples
	stopPoll()
	if after, err := scrapeJobs(ctx, api); err == nil {
		res.cpuAfter, res.cpuDone = after.cpu, time.Now()
	}
	sk.waitCount(kindCertificateEmail, len(burst), jobsWait, jobsStall, ctx.Done())
	res.certEmails = sk.count(kindCertificateEmail)
	_, res.certEmailDups = sk.arrivals(kindCertificateEmail)

	// Idle: one completion at a time, from its answer to the certificate on the dashboard.
	for i, id := range idle {
		// A second first, for the burst's last jobs to end; then a pause between two.
		wait := idleGap
		if i == 0 {
			wait = time.Second
		}
		if err := pause(ctx, wait); err != nil {
			return err
		}
		took, ok, err := idleCertificate(ctx, api, jf, id)
		errs.see(err)
		if ok {
			res.idle = append(res.idle, took)
		} else {
			res.idleMissed++
		}
	}
	res.commandErrors, res.firstError = errs.get()
	rep.addJobsPhase(stdout, res, sk.unreadable())
	return nil
}

// pause waits d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// jobsSetup registers the phase's instructor and learners and creates and publishes its course.
func jobsSetup(ctx context.Context, api *api, jf jobsFixture) error {
	post := func(ctx context.Context, path string, body []byte) error {
		_, err := api.command(ctx, path, body)
		return err
	}
	if err := register(ctx, post, jf.fx.instructor, "instructor"); err != nil {
		return err
	}
	if err := createCourse(ctx, post, jf.fx, jf.course); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(setupWorkers)
	for _, id := range jf.learners {
		g.Go(func() error { return register(gctx, post, id, "learner") })
	}
	return g.Wait()
}

// forEach calls each for every id, from up to n goroutines at once.
func forEach(ctx context.Context, n int, ids []string, each func(context.Context, string)) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range min(n, len(ids)) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(ids) && ctx.Err() == nil; i = int(next.Add(1)) - 1 {
				each(ctx, ids[i])
			}
		})
	}
	wg.Wait()
}

// commandErrors counts the failed commands of concurrent clients and keeps the first error.
type commandErrors struct {
	mu    sync.Mutex
	n     int64
	first string
}

func (c *commandErrors) see(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == 0 {
		c.first = err.Error()
	}
	c.n++
}

func (c *commandErrors) get() (int64, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.first
}

// pollCertificates reads the certificate jobs completed every metricsEvery until they reach
// want, jobsWait passes, none completes for jobsStall (certificates off) or ctx ends, and
// returns what it read.
func pollCertificates(ctx context.Context, api *api, want int) []countSample {
	var out []countSample
	deadline := time.Now().Add(jobsWait)
	moved := time.Now()
	t := time.NewTicker(metricsEvery)
	defer t.Stop()
	for {
		if s, err := scrapeJobs(ctx, api); err == nil {
			if len(out) == 0 || out[len(out)-1].n != s.certificates {
				moved = time.Now()
			}
			out = append(out, countSample{at: time.Now(), n: s.certificates})
			if s.certificates >= want {
				return out
			}
		}
		if time.Now().After(deadline) || time.Since(moved) > jobsStall {
			return out
		}
		select {
		case <-ctx.Done():
			return out
		case <-t.C:
		}
	}
}

// jobsSample is what /metrics says of the certificate jobs and the process.
type jobsSample struct {
	certificates int // certificate jobs completed
	cpu          float64
}

func scrapeJobs(ctx context.Context, api *api) (jobsSample, error) {
	body, err := api.fetch(ctx, "/metrics")
	if err != nil {
		return jobsSample{}, err
	}
	return parseJobsSample(string(body))
}

// parseJobsSample reads edutrack_jobs{kind="certificate",state="completed"} and the process's
// CPU seconds; a metric that is absent counts as 0.
func parseJobsSample(text string) (jobsSample, error) {
	var s jobsSample
	err := eachSample(text, func(name, labels string, v float64) error {
		switch name {
		case "edutrack_jobs":
			kind, _ := labelValue(labels, "kind")
			state, _ := labelValue(labels, "state")
			if kind == "certificate" && state == "completed" {
				s.certificates += int(v)
			}
		case metricCPU:
			s.cpu = v
		}
		return nil
	})
	return s, err
}

// idleCertificate completes the learner's course and reads their dashboard every idlePoll until
// it shows the course's certificate; it returns the time from the command's answer to then, and
// whether the certificate showed within jobsWait.
func idleCertificate(ctx context.Context, api *api, jf jobsFixture, learner string) (time.Duration, bool, error) {
	if _, err := api.command(ctx, jf.completePath(learner, jf.fx.modules[jobsModules-1]), nil); err != nil {
		return 0, false, err
	}
	acked := time.Now()
	for time.Since(acked) < jobsWait {
		body, err := api.fetch(ctx, "/v1/learners/"+learner+"/dashboard")
		if err != nil {
			return 0, false, err
		}
		if hasCertificate(body, jf.course) {
			return time.Since(acked), true, nil
		}
		select {
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-time.After(idlePoll):
		}
	}
	return 0, false, nil
}

// hasCertificate is whether a dashboard shows a certificate for the course.
func hasCertificate(dashboard []byte, course string) bool {
	var d struct {
		Enrollments []struct {
			CourseID    string          `json:"courseId"`
			Certificate json.RawMessage `json:"certificate"`
		} `json:"enrollments"`
	}
	if json.Unmarshal(dashboard, &d) != nil {
		return false
	}
	for _, e := range d.Enrollments {
		if e.CourseID == course && len(e.Certificate) > 0 && string(e.Certificate) != "null" {
			return true
		}
	}
	return false
}

// checkJobsFlags checks the jobs phase's flags, whether it runs or not.
func checkJobsFlags(cfg config) []string {
	var problems []string
	if cfg.jobsEmails < 1 || cfg.jobsCertificates < 1 || cfg.jobsIdle < 0 {
		problems = append(problems, "-jobs-emails and -jobs-certificates must be at least 1, -jobs-idle not negative")
	}
	if cfg.jobsCertificates+cfg.jobsIdle > cfg.jobsEmails {
		problems = append(problems, "-jobs-certificates plus -jobs-idle must not exceed -jobs-emails: they are among its learners")
	}
	if cfg.smtpListen == "" {
		problems = append(problems, "-smtp-listen must not be empty")
	}
	return problems
}
