package reactors

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/edutrack/edutrack/eventstore"
)

// Trigger turns an event into the job it calls for, or nil when it calls for none. The job's
// args must follow from the event alone (they carry its id): inserted twice, they are the same
// job, which the queue's unique index refuses. An error stops the reactor at that event, retried,
// so that no job is lost to an event it could not read.
type Trigger func(e eventstore.RecordedEvent) (river.JobArgs, error)

// Log is what the reactor needs of the event store.
type Log interface {
	Subscribe(ctx context.Context, after uint64) (eventstore.Subscription, error)
}

// ReactorOptions tune a Reactor.
type ReactorOptions struct {
	// Name keys the checkpoint and the lease (default "reactor").
	Name string
	// Owner names this process in the lease.
	Owner string
	// LeaseTTL is how long the lease outlives a holder that stopped renewing it (default 10s).
	LeaseTTL time.Duration
	// Batch is how many events one transaction takes at most (default 500).
	Batch int
	// RetryDelay is the first pause after a failed batch, doubled up to a minute (default 1s).
	RetryDelay time.Duration
	// Gone, when set, tells whether the process that a lease's owner names has ended (a crash of
	// a process of this machine): its lease is then released at start, so that a restart reacts
	// at once instead of waiting out LeaseTTL. The token still moves on with the next holder.
	Gone func(owner string) bool
}

// Reactor follows the event log and inserts the jobs its triggers ask for.
type Reactor struct {
	log      Log
	queue    *Queue
	logger   *slog.Logger
	triggers []Trigger
	opts     ReactorOptions
}

// NewReactor returns a reactor over log that inserts into queue.
func NewReactor(log Log, queue *Queue, logger *slog.Logger, opts ReactorOptions, triggers ...Trigger) (*Reactor, error) {
	if log == nil || queue == nil || logger == nil || opts.Owner == "" {
		return nil, errors.New("reactors: the log, the queue, a logger and an owner are required")
	}
	if opts.Name == "" {
		opts.Name = "reactor"
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = 10 * time.Second
	}
	if opts.Batch <= 0 {
		opts.Batch = 500
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	return &Reactor{log: log, queue: queue, logger: logger, triggers: triggers, opts: opts}, nil
}

// Run reacts while this process holds the reactor lease, until ctx ends.
func (r *Reactor) Run(ctx context.Context) error {
	if r.opts.Gone != nil {
		r.freeGoneHolder(ctx)
	}
	return r.queue.holdLease(ctx, r.opts.Name, r.opts.Owner, r.opts.LeaseTTL, r.logger, r.react)
}

// freeGoneHolder releases the reactor lease if a process that has ended holds it.
func (r *Reactor) freeGoneHolder(ctx context.Context) {
	l, held, err := r.queue.lease(ctx, r.opts.Name)
	if err != nil || !held || l.Owner == r.opts.Owner || !l.Expires.After(time.Now()) || !r.opts.Gone(l.Owner) {
		return
	}
	if err := r.queue.release(r.opts.Name, l.Owner); err != nil {
		r.logger.Warn("release the reactor lease of a process that ended", "holder", l.Owner, "err", err)
		return
	}
	r.logger.Info("released the reactor lease of a process of this machine that no longer runs", "holder", l.Owner)
}

// Checkpoint is the position of the last event the reactor has turned into jobs.
func (r *Reactor) Checkpoint(ctx context.Context) (uint64, error) {
	var pos uint64
	err := r.queue.store.queryRow(ctx, `SELECT position FROM reactor_checkpoints WHERE name = $1`, r.opts.Name).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return pos, err
}

// react follows the log from the checkpoint, holding the lease of token. A failed batch is
// rolled back and taken again from the checkpoint after a pause.
func (r *Reactor) react(ctx context.Context, token int64) error {
	delay := r.opts.RetryDelay
	for ctx.Err() == nil {
		err := r.follow(ctx, token)
		switch {
		case ctx.Err() != nil, errors.Is(err, eventstore.ErrClosed):
			return nil
		case errors.Is(err, ErrLeaseLost):
			return err
		}
		r.logger.Error("the reactor failed; resuming from its checkpoint", "err", err, "in", delay)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Minute)
	}
	return nil
}

func (r *Reactor) follow(ctx context.Context, token int64) error {
	after, err := r.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("read the reactor's checkpoint: %w", err)
	}
	sub, err := r.log.Subscribe(ctx, after)
	if err != nil {
		return fmt.Errorf("follow the event log from %d: %w", after, err)
	}
	defer sub.Close()
	for {
		events, err := sub.Next(ctx, r.opts.Batch)
		if err != nil {
			return err
		}
		if err := r.commit(ctx, token, after, events); err != nil {
			return err
		}
		after = events[len(events)-1].Position
	}
}

// unique makes each job one of a kind by its args, which carry the triggering event's id, in
// every state: a job the checkpoint failed to guard is refused while the queue keeps the first.
var unique = river.UniqueOpts{ByArgs: true, ByState: rivertype.JobStates()}

// commit inserts the jobs of events and moves the checkpoint from after past them, in one
// transaction: a crash before it commits leaves neither, after it both. The checkpoint moves
// only while this process holds the lease of token, and only forward.
func (r *Reactor) commit(ctx context.Context, token int64, after uint64, events []eventstore.RecordedEvent) error {
	tx, err := r.queue.store.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.rollback(context.WithoutCancel(ctx))
	// Writing the lease row checks it and, on PostgreSQL, locks it until the commit, so that no
	// other process takes the lease while this transaction may still commit.
	n, err := tx.exec(ctx, `UPDATE reactor_leases SET token = token WHERE name = $1 AND owner = $2 AND token = $3`,
		r.opts.Name, r.opts.Owner, token)
	if err != nil {
		return fmt.Errorf("check the reactor lease: %w", err)
	}
	if n != 1 {
		return fmt.Errorf("%w (lease %s, token %d)", ErrLeaseLost, r.opts.Name, token)
	}
	for _, e := range events {
		for _, trigger := range r.triggers {
			args, err := trigger(e)
			if err != nil {
				return fmt.Errorf("event %s at %d: %w", e.Type, e.Position, err)
			}
			if args == nil {
				continue
			}
			res, err := tx.insert(ctx, args, &river.InsertOpts{UniqueOpts: unique})
			if err != nil {
				return fmt.Errorf("insert the %s job of event %s at %d: %w", args.Kind(), e.ID, e.Position, err)
			}
			if res.UniqueSkippedAsDuplicate {
				r.logger.Info("job already queued for this event", "kind", args.Kind(), "event_id", e.ID, "position", e.Position)
			}
		}
	}
	last := events[len(events)-1].Position
	n, err = tx.exec(ctx, `INSERT INTO reactor_checkpoints (name, position) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET position = excluded.position WHERE reactor_checkpoints.position = $3`,
		r.opts.Name, last, after)
	if err != nil {
		return fmt.Errorf("move the reactor's checkpoint to %d: %w", last, err)
	}
	if n != 1 {
		return fmt.Errorf("%w (lease %s, token %d): the checkpoint was not at %d", ErrLeaseLost, r.opts.Name, token, after)
	}
	return tx.commit(ctx)
}

// ExponentialBackoff waits base after the first failure and twice as long after each next, up
// to max, each wait drawn between half and all of that (jitter), so that jobs failing together
// do not come back together.
func ExponentialBackoff(base, max time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		d := base
		for i := 1; i < attempt && d < max; i++ {
			d *= 2
		}
		d = min(d, max)
		return d/2 + rand.N(d/2+1)
	}
}
