package main

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"time"

	"github.com/riverqueue/river"
	"golang.org/x/sync/errgroup"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/internal/auth"
	"github.com/edutrack/edutrack/internal/observe"
	"github.com/edutrack/edutrack/reactors"
	"github.com/edutrack/edutrack/reactors/email"
	"github.com/edutrack/edutrack/reactors/email/smtpmail"
	"github.com/edutrack/edutrack/reactors/jobsapi"
)

// emailWorkers is how many emails one work process sends at once.
const emailWorkers = 10

// emailBackoff spaces out the attempts of a failed email: 30 s, then twice as long each time up
// to an hour, each drawn between half and all of that; with email.MaxAttempts that is three to
// six hours before a job is discarded.
var emailBackoff = reactors.ExponentialBackoff(30*time.Second, time.Hour)

// jobs is the react and work roles: the job queue (openQueue), the reactor that fills it while
// this process holds the reactor lease, and the workers that empty it. closeJobs closes the
// queue once the process has stopped.
func (p *process) jobs(ctx context.Context) (closeJobs func() error, err error) {
	owner := leaseOwner()
	opts := reactors.QueueOptions{ID: owner, Logger: p.log, Registerer: p.reg}
	var triggers []reactors.Trigger
	if p.cfg.smtp == nil {
		p.log.Info("no SMTP server configured (EDUTRACK_SMTP_URL): enrollment emails are not enqueued")
	} else {
		triggers = append(triggers, email.OnEnrolled)
		if p.cfg.roles.work {
			mailer, err := smtpmail.New(smtpmail.Config{URL: p.cfg.smtp.url, From: p.cfg.smtp.from, Username: p.cfg.smtp.username,
				Password: p.cfg.smtp.password})
			if err != nil {
				return nil, err
			}
			worker, err := email.NewEnrollmentWorker(p.events, mailer, p.cfg.smtp.publicURL, emailBackoff)
			if err != nil {
				return nil, err
			}
			opts.Workers = river.NewWorkers()
			if err := river.AddWorkerSafely(opts.Workers, worker); err != nil {
				return nil, err
			}
			opts.Queues = map[string]int{email.Queue: emailWorkers}
		}
	}
	if triggers, err = p.certificates(ctx, &opts, triggers); err != nil {
		return nil, err
	}
	if triggers, err = p.courseImages(ctx, &opts, triggers); err != nil {
		return nil, err
	}
	queue, err := openQueue(ctx, p.cfg, opts)
	if err != nil {
		return nil, err
	}
	p.readiness.Checks["job_queue"] = queue.Ping
	p.readiness.Jobs = func(ctx context.Context) (observe.JobBacklog, error) {
		b, err := queue.Backlog(ctx)
		return observe.JobBacklog(b), err
	}
	jobsapi.Routes(p.v1.With(auth.Restrict(p.log, domain.Admin)), queue, p.log)
	startUI, err := p.jobsUI(queue)
	if err != nil {
		queue.Close()
		return nil, err
	}
	var reactor *reactors.Reactor
	if p.cfg.roles.react {
		reactor, err = reactors.NewReactor(p.events, queue, p.log, reactors.ReactorOptions{Owner: owner, LeaseTTL: p.cfg.leaseTTL, Gone: goneLocalProcess}, triggers...)
		if err != nil {
			queue.Close()
			return nil, err
		}
	}
	p.workers = append(p.workers, func(ctx context.Context) error {
		g, ctx := errgroup.WithContext(ctx)
		if err := startUI(ctx); err != nil {
			return err
		}
		if reactor != nil {
			g.Go(func() error { return reactor.Run(ctx) })
		}
		if opts.Workers != nil {
			g.Go(func() error { return queue.Work(ctx) })
		}
		return g.Wait()
	})
	return queue.Close, nil
}

// jobsUICookie names the cookie that admits an admin's browser to the jobs UI.
const jobsUICookie = "edutrack_jobs_ui"

// jobsUI mounts River's web UI at /admin/jobs/ for admins: they sign in at
// /admin/jobs/session with their token, which a cookie of that path then carries (see
// auth.CookieGate); everyone else gets 404. start runs the UI's background work until its
// context ends.
func (p *process) jobsUI(queue *reactors.Queue) (start func(context.Context) error, err error) {
	ui, err := jobsapi.NewUI(queue.RiverClient(), p.log)
	if err != nil {
		return nil, err
	}
	gate, err := auth.NewCookieGate(p.authn, p.log, jobsUICookie, jobsapi.UIPath, domain.Admin)
	if err != nil {
		return nil, err
	}
	// The UI's own calls (retry, cancel, delete, pause) are same-origin fetches that carry the
	// cookie. SameSite=Strict keeps it off requests from other sites, and the cross-origin
	// check refuses their unsafe requests outright, for browsers that ignore SameSite.
	r := p.public.With(http.NewCrossOriginProtection().Handler)
	signIn := jobsapi.UIPath + "session"
	r.Get(signIn, gate.SignInForm(signIn))
	r.Post(signIn, gate.SignIn)
	r.With(gate.Middleware).Handle(jobsapi.UIPath+"*", ui)
	return ui.Start, nil
}

// openQueue opens the job queue: on PostgreSQL when EDUTRACK_POSTGRES_URL names one, which
// processes on many machines share, else in jobs.db in the data dir.
func openQueue(ctx context.Context, cfg config, opts reactors.QueueOptions) (*reactors.Queue, error) {
	if cfg.postgresURL != "" {
		return reactors.OpenPostgresQueue(ctx, cfg.postgresURL, opts)
	}
	return reactors.OpenQueue(ctx, filepath.Join(cfg.dataDir, "jobs.db"), opts)
}

// errNoLog is the error of a role that needs the event log in a process that has none.
var errNoLog = errors.New("the react and work roles need the event log: run them beside the write role, or on KurrentDB")
