// Package reactors turns events into jobs and runs them. The reactor follows the event log from
// a checkpoint and, for each event a trigger cares about, inserts a job in the same transaction
// that moves the checkpoint past it; workers, in any number of processes, run the jobs. The job
// engine is River, on SQLite (jobs.db) or PostgreSQL; the jobs themselves live in subpackages
// (email).
package reactors

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// QueueOptions tune a Queue.
type QueueOptions struct {
	// Workers run the jobs of Queues in this process; nil with no Queues for a process that only
	// inserts jobs (the reactor alone).
	Workers *river.Workers
	// Queues are the queues this process works, each with the jobs it runs at once.
	Queues map[string]int
	// PollInterval is how often a working process looks for jobs other processes inserted
	// (default 1s); jobs this process inserts start at once.
	PollInterval time.Duration
	// ID names this process in the jobs it works (their attempted_by); default River's, the
	// host and the time the client started.
	ID     string
	Logger *slog.Logger
	// Registerer takes the queue's metrics; nil for none.
	Registerer prometheus.Registerer
}

// Queue is the job queue: River's tables, and the reactor's checkpoint and lease, in one
// database (jobs.db, or PostgreSQL), so that the reactor moves its checkpoint in the
// transaction that inserts its jobs.
type Queue struct {
	store   store
	client  jobClient
	working bool
	metrics *queueMetrics // nil without a Registerer
}

// newQueue is the queue over store and client, its metrics registered on opts.Registerer if set.
func newQueue(store store, client jobClient, opts QueueOptions) (*Queue, error) {
	q := &Queue{store: store, client: client, working: len(opts.Queues) > 0}
	if opts.Registerer != nil {
		m, err := newQueueMetrics(q, opts.Registerer, opts.Logger)
		if err != nil {
			return nil, err
		}
		q.metrics = m
	}
	return q, nil
}

// riverConfig checks opts and turns them into River's configuration.
func riverConfig(opts QueueOptions) (*river.Config, error) {
	if opts.Logger == nil {
		return nil, errors.New("reactors: a logger is required")
	}
	if (opts.Workers == nil) != (len(opts.Queues) == 0) {
		return nil, errors.New("reactors: workers and queues go together")
	}
	cfg := &river.Config{ID: opts.ID, Logger: libraryLog(opts.Logger), Workers: opts.Workers, FetchPollInterval: opts.PollInterval,
		// A job still running after this was left by a worker that died (kill -9, a lost
		// machine) and is run again; it must outlast every worker's Timeout (River's default
		// is an hour, which leaves a certificate waiting that long).
		RescueStuckJobsAfter: 10 * time.Minute,
		// Kept a week, so an operator can see what was sent and retry what was discarded.
		CompletedJobRetentionPeriod: 7 * 24 * time.Hour, DiscardedJobRetentionPeriod: 30 * 24 * time.Hour}
	if cfg.FetchPollInterval <= 0 {
		cfg.FetchPollInterval = time.Second
	}
	// A queue fetches at most as many jobs as it has free workers, and at most once a cooldown:
	// River's 100 ms held 4 certificate workers to 40 a second and 10 email workers to 100,
	// with the CPU mostly idle (BENCHMARKS.md, "Jobs and certificates"). Busy, 10 ms costs a
	// fetch query up to 100 times a second per queue; idle, the poll interval rules.
	cfg.FetchCooldown = min(10*time.Millisecond, cfg.FetchPollInterval)
	if len(opts.Queues) > 0 {
		cfg.Queues = map[string]river.QueueConfig{}
		for name, n := range opts.Queues {
			cfg.Queues[name] = river.QueueConfig{MaxWorkers: n}
		}
	}
	return cfg, nil
}

// OpenQueue opens (creating, mode 0600) the job queue at path and brings its tables up to date.
func OpenQueue(ctx context.Context, path string, opts QueueOptions) (_ *Queue, err error) {
	cfg, err := riverConfig(opts)
	if err != nil {
		return nil, err
	}
	// One connection: River runs many operations at once, which SQLite answers with
	// SQLITE_BUSY even with a busy timeout; one connection serialises them in this process. The
	// busy timeout and immediate transactions cover the other processes on the same file.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"+
		"&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open the job queue: %w", err)
	}
	db.SetMaxOpenConns(1)
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	if err := db.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("open the job queue %s: %w", path, err)
	}
	// It holds learners' ids and what happened to their emails.
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, fmt.Errorf("make the job queue private: %w", err)
	}
	driver := riversqlite.New(db)
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: libraryLog(opts.Logger)})
	if err != nil {
		return nil, err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("migrate the job queue: %w", err)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		return nil, fmt.Errorf("create the reactor's tables: %w", err)
	}
	client, err := river.NewClient(driver, cfg)
	if err != nil {
		return nil, fmt.Errorf("start the job client: %w", err)
	}
	return newQueue(newSQLStore(db, client), client, opts)
}

// schema is the reactor's tables, in SQL that SQLite and PostgreSQL both take.
const schema = `
CREATE TABLE IF NOT EXISTS reactor_checkpoints (
	name     TEXT PRIMARY KEY,
	position BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS reactor_leases (
	name       TEXT PRIMARY KEY,
	owner      TEXT NOT NULL,
	token      BIGINT NOT NULL,
	expires_at BIGINT NOT NULL -- unix nanoseconds
);`

// Work runs the workers until ctx ends, then lets the jobs in hand finish (up to 10s, then
// cancels them: they are tried again).
func (q *Queue) Work(ctx context.Context) error {
	if !q.working {
		return errors.New("reactors: this queue was opened without workers")
	}
	if q.metrics != nil {
		events, unsubscribe := q.client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
		stop, observed := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(observed)
			q.metrics.observe(events, stop)
		}()
		defer func() {
			close(stop)
			<-observed
			unsubscribe()
		}()
	}
	if err := q.client.Start(ctx); err != nil {
		if ctx.Err() != nil { // stopped while the workers started: a clean stop, with nothing to drain
			return nil
		}
		return fmt.Errorf("start the workers: %w", err)
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := q.client.Stop(sctx); err != nil {
		return q.client.StopAndCancel(context.Background())
	}
	return nil
}

// Jobs lists up to 1,000 jobs of kind, in every state, oldest first.
func (q *Queue) Jobs(ctx context.Context, kind string) ([]*rivertype.JobRow, error) {
	res, err := q.client.JobList(ctx, river.NewJobListParams().Kinds(kind).First(1000).
		States(rivertype.JobStates()...))
	if err != nil {
		return nil, err
	}
	return res.Jobs, nil
}

// RiverClient is River's client of the queue, *river.Client[*sql.Tx] on SQLite or
// *river.Client[pgx.Tx] on PostgreSQL, for River's web UI (jobsapi.NewUI), which reads and
// operates the queue through it.
func (q *Queue) RiverClient() any { return q.client }

// Ping checks that the queue's database answers.
func (q *Queue) Ping(ctx context.Context) error { return q.store.ping(ctx) }

// Close closes the queue's database; the workers must have stopped.
func (q *Queue) Close() error { return q.store.close() }

// libraryLog hands River's log lines to EduTrack's log as details: debug lines, and its errors
// as warnings (a failing job is normal, and shows in the queue).
func libraryLog(log *slog.Logger) *slog.Logger { return LibraryLog(log, "river") }

// LibraryLog hands the log lines of library (River, its web UI) to log as River's are: debug
// lines, and its errors as warnings, each naming the library.
func LibraryLog(log *slog.Logger, library string) *slog.Logger {
	return slog.New(demoted{log.Handler().WithAttrs([]slog.Attr{slog.String("library", library)})})
}

type demoted struct{ slog.Handler }

func (d demoted) level(l slog.Level) slog.Level {
	if l >= slog.LevelError {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

func (d demoted) Enabled(ctx context.Context, l slog.Level) bool {
	return d.Handler.Enabled(ctx, d.level(l))
}

func (d demoted) Handle(ctx context.Context, r slog.Record) error {
	r.Level = d.level(r.Level)
	return d.Handler.Handle(ctx, r)
}

func (d demoted) WithAttrs(attrs []slog.Attr) slog.Handler {
	return demoted{d.Handler.WithAttrs(attrs)}
}
func (d demoted) WithGroup(name string) slog.Handler { return demoted{d.Handler.WithGroup(name)} }
