// Package projections builds the read models from the global log. Each projector follows the log
// from its own checkpoint through a watermill router: our subscriber turns the event store's
// subscription into messages that each carry a batch of events, and the handler folds a batch
// into documents written in one commit, then warms the cache.
package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/cache"
	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/readstore"
)

// Event is a recorded event with its decoded data.
type Event struct {
	eventstore.RecordedEvent
	Data domain.Event
	err  error // why it could not be decoded
}

// Projector folds events into the documents of its read models.
type Projector interface {
	// Name is the projection's name, which keys its checkpoint.
	Name() string
	// Collections are the collections whose documents the read API serves by id; their new
	// documents warm the cache. (Listings are read from the store.)
	Collections() []string
	// Indexes are the indexes its queries need.
	Indexes() []readstore.Index
	// Apply folds one event into the documents it touches, through tx.
	Apply(ctx context.Context, tx *Tx, e Event) error
}

// DocRef names one document.
type DocRef struct{ Coll, ID string }

// Prefetcher is a Projector that can name, before applying a batch, the documents each event
// will read, so the runner loads them in one query per collection instead of one per document.
type Prefetcher interface {
	Refs(e Event) []DocRef
}

// Log is what projections need of the event store.
type Log interface {
	Subscribe(ctx context.Context, after uint64) (eventstore.Subscription, error)
	ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.RecordedEvent, error)
	Head(ctx context.Context) (uint64, error)
}

// Decoder turns stored events back into domain events.
type Decoder interface {
	Decode(name string, data []byte) (domain.Event, error)
}

// Options tune a Runner.
type Options struct {
	BatchSize  int           // events per message at most (default 5,000); a bigger batch writes each document fewer times
	MaxRetries int           // retries of a failing batch before it becomes a dead letter (default 5)
	RetryDelay time.Duration // first retry delay, doubled each time (default 100ms)
	// Linger is how long a small batch waits for more events before it is applied (default
	// 5ms): live, it trades that much visibility delay for far fewer read-store commits.
	Linger time.Duration
	// HotDocuments caps the decoded documents each projection keeps between batches (default
	// 20,000).
	HotDocuments int
	// Now gives the time dead letters record (default time.Now).
	Now func() time.Time
}

// Runner runs projectors.
type Runner struct {
	log        Log
	decoder    Decoder
	store      readstore.Store
	cache      cache.Cache
	logger     *slog.Logger
	projectors []Projector
	opts       Options
	positions  *Positions
	metrics    *runnerMetrics
	feed       *feed
	hot        map[string]*docCache // per projection; only its handler goroutine touches it
	router     *message.Router

	mu      sync.Mutex
	status  map[string]string
	started bool // the router was started, so Close must stop it
}

// Statuses of a projection.
const (
	StatusStarting   = "starting"
	StatusCatchingUp = "catching up"
	StatusRunning    = "running"
	StatusStalled    = "stalled"
)

// NewRunner returns a runner of projectors over log, writing to store and warming c.
func NewRunner(log Log, decoder Decoder, store readstore.Store, c cache.Cache, positions *Positions,
	reg prometheus.Registerer, logger *slog.Logger, opts Options, projectors ...Projector) (*Runner, error) {
	if log == nil || decoder == nil || store == nil || c == nil || positions == nil || reg == nil || logger == nil {
		return nil, errors.New("projections: every dependency is required")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = 5
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = 100 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Linger == 0 {
		opts.Linger = 5 * time.Millisecond
	}
	if opts.HotDocuments <= 0 {
		opts.HotDocuments = 20_000
	}
	m, err := newRunnerMetrics(reg)
	if err != nil {
		return nil, err
	}
	r := &Runner{log: log, decoder: decoder, store: store, cache: c, logger: logger, projectors: projectors,
		opts: opts, positions: positions, metrics: m, status: make(map[string]string),
		feed: newFeed(log, decoder, opts.BatchSize, logger), hot: map[string]*docCache{}}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, watermill.NewSlogLogger(logger))
	if err != nil {
		return nil, err
	}
	router.AddMiddleware(
		r.deadLetters, // outermost: sees the error only once Retry has given up
		middleware.Retry{
			MaxRetries:      opts.MaxRetries,
			InitialInterval: opts.RetryDelay,
			MaxInterval:     10 * opts.RetryDelay,
			Multiplier:      2,
			Logger:          watermill.NewSlogLogger(logger),
		}.Middleware,
		middleware.Recoverer,
	)
	metrics.NewPrometheusMetricsBuilder(reg, "edutrack", "projections").AddPrometheusRouterMetrics(router)
	for _, p := range projectors {
		r.hot[p.Name()] = newDocCache(opts.HotDocuments)
		sub := &logSubscriber{feed: r.feed, from: r.checkpoint(p), batch: opts.BatchSize, linger: opts.Linger, logger: logger}
		router.AddConsumerHandler(p.Name(), p.Name(), sub, r.handler(p))
		r.status[p.Name()] = StatusStarting
	}
	r.router = router
	return r, nil
}

// Run creates the indexes, then runs every projector until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	from := ^uint64(0)
	for _, p := range r.projectors {
		if err := r.store.EnsureIndexes(ctx, p.Indexes()); err != nil {
			if ctx.Err() != nil {
				return nil // stopped while starting
			}
			return fmt.Errorf("indexes of %s: %w", p.Name(), err)
		}
		cp, err := r.store.Checkpoint(ctx, p.Name())
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		r.positions.Advance(p.Name(), cp)
		from = min(from, cp)
		r.metrics.position.WithLabelValues(p.Name()).Set(float64(cp))
		if head, err := r.log.Head(ctx); err == nil {
			r.metrics.lag.WithLabelValues(p.Name()).Set(float64(head - min(head, cp)))
			status := StatusRunning
			if head > cp {
				status = StatusCatchingUp
			}
			r.setStatus(p.Name(), status)
		}
	}
	r.mu.Lock()
	r.started = ctx.Err() == nil
	r.mu.Unlock()
	if !r.started {
		return nil
	}
	feedCtx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	if len(r.projectors) == 0 {
		from = 0
	}
	go r.feed.run(feedCtx, from)
	err := r.router.Run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Running is closed once the router runs.
func (r *Runner) Running() chan struct{} { return r.router.Running() }

// Close stops the router, letting the batch in hand finish.
func (r *Runner) Close() error {
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	if !started {
		return nil
	}
	return r.router.Close()
}

// Status returns each projection's status.
func (r *Runner) Status() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]string, len(r.status))
	for k, v := range r.status {
		out[k] = v
	}
	return out
}

func (r *Runner) setStatus(name, s string) {
	r.mu.Lock()
	r.status[name] = s
	r.mu.Unlock()
	r.metrics.stalled.WithLabelValues(name).Set(map[bool]float64{true: 1, false: 0}[s == StatusStalled])
}

func (r *Runner) checkpoint(p Projector) func(ctx context.Context) (uint64, error) {
	return func(ctx context.Context) (uint64, error) { return r.store.Checkpoint(ctx, p.Name()) }
}

// applyError is a batch that failed at one event.
type applyError struct {
	projection string
	event      eventstore.RecordedEvent
	err        error
}

func (e *applyError) Error() string {
	return fmt.Sprintf("%s: apply %s at position %d: %v", e.projection, e.event.Type, e.event.Position, e.err)
}

func (e *applyError) Unwrap() error { return e.err }

// handler folds one message's batch. When an event fails, the events before it are committed
// first, so the projection stops exactly at the event it cannot apply.
func (r *Runner) handler(p Projector) message.NoPublishHandlerFunc {
	name := p.Name()
	return func(msg *message.Message) error {
		events := batchOf(msg)
		if len(events) == 0 {
			return nil
		}
		ctx := msg.Context()
		hot := r.hot[name]
		tx := newTx(r.store, hot)
		ok := false
		defer func() {
			if !ok {
				hot.clear() // the failed batch may have changed cached values in place
			}
		}()
		decoded := events
		var failed error
		for i, e := range events {
			if e.err != nil {
				failed = &applyError{projection: name, event: e.RecordedEvent, err: e.err}
				decoded = events[:i]
				break
			}
		}
		if pf, ok := p.(Prefetcher); ok {
			if err := prefetch(ctx, tx, pf, decoded); err != nil {
				return err
			}
		}
		applied := 0
		for _, e := range decoded {
			tx.pos = e.Position
			if err := p.Apply(ctx, tx, e); err != nil {
				failed = &applyError{projection: name, event: e.RecordedEvent, err: err}
				break
			}
			applied++
		}
		if failed != nil && applied > 0 {
			// The failing event may have changed documents before it failed: apply the events
			// before it again, from the store, so the commit holds exactly them.
			tx = newTx(r.store, nil)
			for _, e := range decoded[:applied] {
				tx.pos = e.Position
				if err := p.Apply(ctx, tx, e); err != nil {
					return err
				}
			}
		}
		if applied > 0 {
			if err := r.commit(ctx, p, tx, decoded[applied-1].Position, applied); err != nil {
				return err
			}
		}
		ok = failed == nil
		if failed == nil {
			if head, err := r.log.Head(ctx); err == nil {
				r.metrics.lag.WithLabelValues(name).Set(float64(head - min(head, events[len(events)-1].Position)))
				status := StatusRunning
				if head > events[len(events)-1].Position {
					status = StatusCatchingUp
				}
				r.setStatus(name, status)
			}
		}
		return failed
	}
}

func (r *Runner) commit(ctx context.Context, p Projector, tx *Tx, checkpoint uint64, applied int) error {
	writes, err := tx.writes()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := r.store.Commit(ctx, p.Name(), checkpoint, writes); err != nil {
		return fmt.Errorf("%s: commit up to %d: %w", p.Name(), checkpoint, err)
	}
	r.metrics.batchSeconds.WithLabelValues(p.Name()).Observe(time.Since(start).Seconds())
	r.metrics.applied.WithLabelValues(p.Name()).Add(float64(applied))
	r.metrics.position.WithLabelValues(p.Name()).Set(float64(checkpoint))
	public := map[string]bool{}
	for _, c := range p.Collections() {
		public[c] = true
	}
	for _, w := range writes {
		if public[w.Coll] {
			r.cache.Set(ctx, CacheKey(w.Coll, w.Doc.ID), cache.Entry{Position: w.Doc.Position, Body: w.Doc.Body})
		}
	}
	tx.remember()
	r.positions.Advance(p.Name(), checkpoint)
	return nil
}

func prefetch(ctx context.Context, tx *Tx, pf Prefetcher, events []Event) error {
	byColl := map[string][]string{}
	seen := map[DocRef]bool{}
	for _, e := range events {
		for _, ref := range pf.Refs(e) {
			if !seen[ref] {
				seen[ref] = true
				byColl[ref.Coll] = append(byColl[ref.Coll], ref.ID)
			}
		}
	}
	for coll, ids := range byColl {
		if err := tx.Prefetch(ctx, coll, ids); err != nil {
			return err
		}
	}
	return nil
}

// CacheKey is the cache key of a document.
func CacheKey(coll, id string) string { return coll + ":" + id }

// deadLetters records a batch's failing event once retries gave up, and marks the projection
// stalled; the subscriber then holds the projection at that event instead of skipping it.
func (r *Runner) deadLetters(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		var ae *applyError
		if errors.As(err, &ae) {
			d := readstore.DeadLetter{Projection: ae.projection, Position: ae.event.Position, EventID: ae.event.ID.String(),
				EventType: ae.event.Type, Error: ae.err.Error(), At: r.opts.Now().UTC()}
			if derr := r.store.AddDeadLetter(msg.Context(), d); derr != nil {
				r.logger.Error("record dead letter", "projection", ae.projection, "position", d.Position, "err", derr)
			}
			r.metrics.deadLetters.WithLabelValues(ae.projection).Inc()
			r.setStatus(ae.projection, StatusStalled)
			r.logger.Error("projection stalled", "projection", ae.projection, "position", d.Position, "type", d.EventType, "err", ae.err)
			stall(msg)
		}
		return out, err
	}
}

type runnerMetrics struct {
	position, lag, stalled *prometheus.GaugeVec
	applied, deadLetters   *prometheus.CounterVec
	batchSeconds           *prometheus.HistogramVec
}

func newRunnerMetrics(reg prometheus.Registerer) (*runnerMetrics, error) {
	m := &runnerMetrics{
		position: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "position", Help: "Log position up to which the projection has committed."}, []string{"projection"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "lag_events", Help: "Log head minus the projection's position."}, []string{"projection"}),
		stalled: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "stalled", Help: "1 while the projection is stopped at an event it cannot apply."}, []string{"projection"}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "events_applied_total", Help: "Events the projection applied and committed."}, []string{"projection"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "dead_letters_total", Help: "Events the projection gave up on."}, []string{"projection"}),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "batch_write_seconds", Help: "Time to commit one batch to the read store.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"projection"}),
	}
	for _, c := range []prometheus.Collector{m.position, m.lag, m.stalled, m.applied, m.deadLetters, m.batchSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
