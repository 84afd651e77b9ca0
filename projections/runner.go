// Package projections builds the read models from the global log. Each projector follows the log
// from its own checkpoint through a watermill router: our subscriber turns the event store's
// subscription into messages that each carry a batch of events, and the handler folds a batch
// into documents written in one commit, then warms the cache.
package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/components/metrics"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edutrack/edutrack/domain"
	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/readstore"
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
	// Version is the projector's code version. Raise it whenever a change alters the documents
	// it builds: at the next start the new version builds its read models beside the old ones,
	// which keep serving until it has caught up.
	Version() int
	// ReadModels are every collection it writes, which a rebuild builds anew and then drops
	// together.
	ReadModels() []string
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
	// DropGrace is how long a replaced generation stays after the switch before it is dropped
	// (default 10s), so read processes that poll the registrations move over first.
	DropGrace time.Duration
	// ProgressEvery is how often a rebuild logs its progress (default 5s).
	ProgressEvery time.Duration
	// Now gives the time dead letters record (default time.Now).
	Now func() time.Time
}

// Runner runs projectors: for each, its live generation and, while one is being built, the
// next.
type Runner struct {
	log       Log
	decoder   Decoder
	store     readstore.Store
	cache     cache.Cache
	logger    *slog.Logger
	opts      Options
	positions *Positions
	metrics   *runnerMetrics
	feed      *feed
	router    *message.Router
	live      *Live
	groups    map[string]*group
	order     []string // projection names in the order given

	mu      sync.Mutex
	slots   map[string]*slot // by key
	status  map[string]string
	runCtx  context.Context
	started bool // the router was started, so Close must stop it
	bg      sync.WaitGroup
}

// group is one projection: its registration and the generations running.
type group struct {
	p Projector
	// mu orders the live generation's commits against a switch to a new generation, and
	// guards the fields below.
	mu    sync.Mutex
	reg   registration
	live  *slot // nil while the live generation's code version is gone (it is frozen, still serving)
	build *slot
}

// slot is one generation of a projection, run by one watermill handler.
type slot struct {
	g       *group
	gen     Generation
	key     string
	names   map[string]string // collection -> its name in this generation
	public  map[string]bool   // this generation's names of the collections served by id
	hot     *docCache         // only the slot's handler goroutine touches it
	resume  chan struct{}     // an operator's retry or skip
	handler *message.Handler

	retired   atomic.Bool   // replaced: commits nothing more
	stalledAt atomic.Uint64 // the dead letter's position while stalled
	position  atomic.Uint64
	applied   atomic.Int64 // events applied since the slot started
	startPos  uint64
	started   time.Time
}

// Statuses of a projection.
const (
	StatusStarting   = "starting"
	StatusCatchingUp = "catching up"
	StatusRunning    = "running"
	StatusStalled    = "stalled"
	StatusRebuilding = "rebuilding"
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
	if opts.DropGrace <= 0 {
		opts.DropGrace = 10 * time.Second
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 5 * time.Second
	}
	m, err := newRunnerMetrics(reg)
	if err != nil {
		return nil, err
	}
	r := &Runner{log: log, decoder: decoder, store: store, cache: c, logger: logger, opts: opts,
		positions: positions, metrics: m, feed: newFeed(log, decoder, opts.BatchSize, logger),
		live: NewLive(store, projectors...), groups: map[string]*group{},
		slots: map[string]*slot{}, status: map[string]string{}}
	for _, p := range projectors {
		if _, dup := r.groups[p.Name()]; dup {
			return nil, fmt.Errorf("projections: two projectors are named %s", p.Name())
		}
		r.groups[p.Name()] = &group{p: p}
		r.order = append(r.order, p.Name())
		r.status[p.Name()] = StatusStarting
	}
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
	r.router = router
	return r, nil
}

// Live is the view of the read models that follows each projection's live generation; the read
// API reads through it.
func (r *Runner) Live() *Live { return r.live }

func (r *Runner) newSlot(g *group, gen Generation) *slot {
	s := &slot{g: g, gen: gen, key: gen.key(g.p.Name()), names: map[string]string{}, public: map[string]bool{},
		hot: newDocCache(r.opts.HotDocuments), resume: make(chan struct{}, 1), started: time.Now()}
	for _, c := range g.p.ReadModels() {
		s.names[c] = gen.name(c)
	}
	for _, c := range g.p.Collections() {
		s.names[c] = gen.name(c)
		s.public[gen.name(c)] = true
	}
	return s
}

// prepare makes s's indexes, reads its checkpoint, and adds its handler to the router.
func (r *Runner) prepare(ctx context.Context, s *slot) (uint64, error) {
	indexes := slices.Clone(s.g.p.Indexes())
	for i := range indexes {
		indexes[i].Coll = s.gen.name(indexes[i].Coll)
	}
	if err := r.store.EnsureIndexes(ctx, indexes); err != nil {
		return 0, fmt.Errorf("indexes of %s: %w", s.key, err)
	}
	cp, err := r.store.Checkpoint(ctx, s.key)
	if err != nil {
		return 0, err
	}
	s.startPos = cp
	s.position.Store(cp)
	r.positions.Advance(s.key, cp)
	r.metrics.position.WithLabelValues(s.key).Set(float64(cp))
	status := StatusCatchingUp
	if head, err := r.log.Head(ctx); err == nil {
		r.metrics.lag.WithLabelValues(s.key).Set(float64(head - min(head, cp)))
		if head <= cp {
			status = StatusRunning
		}
	}
	sub := &logSubscriber{feed: r.feed, from: r.checkpoint(s.key), batch: r.opts.BatchSize, linger: r.opts.Linger,
		resume: s.resume, logger: r.logger}
	s.handler = r.router.AddConsumerHandler(s.key, s.key, sub, r.handler(s))
	r.mu.Lock()
	r.slots[s.key] = s
	r.mu.Unlock()
	r.setStatus(s.key, status)
	return cp, nil
}

// start reads each projection's registration, decides which generations to run, and prepares
// them: a projection whose code version changed gets a new generation built beside the live one.
func (r *Runner) start(ctx context.Context) (from uint64, err error) {
	regs, err := loadRegistrations(ctx, r.store, r.order)
	if err != nil {
		return 0, err
	}
	for _, name := range r.order {
		g := r.groups[name]
		reg, found := regs[name]
		if !found {
			// Read models written before generations existed are generation 1 of version 1.
			cp, err := r.store.Checkpoint(ctx, name)
			if err != nil {
				return 0, err
			}
			reg = registration{Live: Generation{N: 1, Version: g.p.Version()}, Last: 1}
			if cp > 0 {
				reg.Live.Version = 1
			}
		}
		for _, old := range reg.Retired {
			if err := r.store.Drop(ctx, old.key(name), r.collsOf(g.p, old)); err != nil {
				return 0, err
			}
		}
		reg.Retired = nil
		if reg.Build != nil && reg.Build.Version != g.p.Version() {
			// A build by code that is gone: start again with this code.
			if err := r.store.Drop(ctx, reg.Build.key(name), r.collsOf(g.p, *reg.Build)); err != nil {
				return 0, err
			}
			reg.Build = nil
		}
		if reg.Live.Version != g.p.Version() && reg.Build == nil {
			reg.Last++
			reg.Build = &Generation{N: reg.Last, Version: g.p.Version()}
			r.logger.Info("projector version changed: building its read models beside the live ones",
				"projection", name, "live_version", reg.Live.Version, "version", g.p.Version(), "generation", reg.Last)
		}
		if err := saveRegistration(ctx, r.store, name, &reg); err != nil {
			return 0, err
		}
		var live, build *slot
		if reg.Live.Version == g.p.Version() {
			live = r.newSlot(g, reg.Live)
		}
		if reg.Build != nil {
			build = r.newSlot(g, *reg.Build)
		}
		r.live.set(name, reg.Live)
		if live != nil {
			cp, err := r.prepare(ctx, live)
			if err != nil {
				return 0, err
			}
			from = max(from, cp)
			r.positions.Advance(name, cp)
			r.metrics.position.WithLabelValues(name).Set(float64(cp))
		} else {
			// The old version serves, frozen, until the new one takes over.
			cp, err := r.store.Checkpoint(ctx, reg.Live.key(name))
			if err != nil {
				return 0, err
			}
			r.positions.Advance(name, cp)
		}
		if build != nil {
			cp, err := r.prepare(ctx, build)
			if err != nil {
				return 0, err
			}
			from = max(from, cp)
		}
		// Published once prepared: before, a slot's position is 0, and the operations would
		// show a resumed rebuild as starting over.
		g.mu.Lock()
		g.reg, g.live, g.build = reg, live, build
		g.mu.Unlock()
	}
	return from, nil
}

func (r *Runner) collsOf(p Projector, g Generation) []string {
	var out []string
	for _, c := range p.ReadModels() {
		out = append(out, g.name(c))
	}
	return out
}

// Run runs every projector until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	// The feed starts at the furthest checkpoint: projections behind it (a rebuild) read the log
	// for themselves until they reach it, instead of holding the live ones back.
	from, err := r.start(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	r.mu.Lock()
	r.started = ctx.Err() == nil
	r.runCtx = ctx
	r.mu.Unlock()
	if !r.started {
		return nil
	}
	feedCtx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	go r.feed.run(feedCtx, from)
	r.bg.Add(1)
	go func() { defer r.bg.Done(); r.reportProgress(ctx) }()
	err = r.router.Run(ctx)
	stopFeed()
	r.bg.Wait()
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

// Status returns each projection's status: stalled when a generation of it is, rebuilding
// while a new generation is being built, else its live generation's.
func (r *Runner) Status() map[string]string {
	out := make(map[string]string, len(r.order))
	for _, name := range r.order {
		out[name] = r.projectionStatus(r.groups[name])
	}
	return out
}

func (r *Runner) projectionStatus(g *group) string {
	g.mu.Lock()
	live, build := g.live, g.build
	g.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case live != nil && r.status[live.key] == StatusStalled, build != nil && r.status[build.key] == StatusStalled:
		return StatusStalled
	case build != nil:
		return StatusRebuilding
	case live != nil && r.status[live.key] != "":
		return r.status[live.key]
	}
	return StatusStarting
}

func (r *Runner) setStatus(key, s string) {
	r.mu.Lock()
	r.status[key] = s
	r.mu.Unlock()
	r.metrics.stalled.WithLabelValues(key).Set(map[bool]float64{true: 1, false: 0}[s == StatusStalled])
}

func (r *Runner) slotStatus(key string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status[key]
}

func (r *Runner) checkpoint(key string) func(ctx context.Context) (uint64, error) {
	return func(ctx context.Context) (uint64, error) { return r.store.Checkpoint(ctx, key) }
}

// applyError is a batch that failed at one event.
type applyError struct {
	key   string
	event eventstore.RecordedEvent
	err   error
}

func (e *applyError) Error() string {
	return fmt.Sprintf("%s: apply %s at position %d: %v", e.key, e.event.Type, e.event.Position, e.err)
}

func (e *applyError) Unwrap() error { return e.err }

// handler folds one message's batch. When an event fails, the events before it are committed
// first, so the projection stops exactly at the event it cannot apply.
func (r *Runner) handler(s *slot) message.NoPublishHandlerFunc {
	p := s.g.p
	return func(msg *message.Message) error {
		events := batchOf(msg)
		if len(events) == 0 || s.retired.Load() {
			return nil
		}
		ctx := msg.Context()
		skips := s.g.skips(s.gen.Version)
		tx := newTx(r.store, s.names, s.hot)
		ok := false
		defer func() {
			if !ok {
				s.hot.clear() // the failed batch may have changed cached values in place
			}
		}()
		// done counts the events handled: applied, or skipped by an operator.
		done := 0
		var failed error
		decoded := events
		for i, e := range events {
			if e.err != nil && !skips[e.Position] {
				failed = &applyError{key: s.key, event: e.RecordedEvent, err: e.err}
				decoded = events[:i]
				break
			}
		}
		if pf, ok := p.(Prefetcher); ok {
			if err := prefetch(ctx, tx, pf, decoded, skips); err != nil {
				return err
			}
		}
		for _, e := range decoded {
			if skips[e.Position] {
				done++
				continue
			}
			tx.pos = e.Position
			if err := p.Apply(ctx, tx, e); err != nil {
				failed = &applyError{key: s.key, event: e.RecordedEvent, err: err}
				break
			}
			done++
		}
		if failed != nil && done > 0 {
			// The failing event may have changed documents before it failed: apply the events
			// before it again, from the store, so the commit holds exactly them.
			tx = newTx(r.store, s.names, nil)
			for _, e := range decoded[:done] {
				if skips[e.Position] {
					continue
				}
				tx.pos = e.Position
				if err := p.Apply(ctx, tx, e); err != nil {
					return err
				}
			}
		}
		if done > 0 {
			if err := r.commit(ctx, s, tx, decoded[done-1].Position, done); err != nil {
				return err
			}
		}
		ok = failed == nil
		if failed == nil {
			last := events[len(events)-1].Position
			if head, err := r.log.Head(ctx); err == nil {
				r.metrics.lag.WithLabelValues(s.key).Set(float64(head - min(head, last)))
				status := StatusRunning
				if head > last {
					status = StatusCatchingUp
				}
				if r.slotStatus(s.key) != status {
					r.setStatus(s.key, status)
				}
			}
			if s.g.isBuild(s) {
				return r.promote(ctx, s, true)
			}
		}
		return failed
	}
}

func (g *group) skips(version int) map[uint64]bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out map[uint64]bool
	for _, sk := range g.reg.Skips {
		if sk.Version == version {
			if out == nil {
				out = map[uint64]bool{}
			}
			out[sk.Position] = true
		}
	}
	return out
}

func (g *group) isBuild(s *slot) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.build == s
}

func (r *Runner) commit(ctx context.Context, s *slot, tx *Tx, checkpoint uint64, handled int) error {
	writes, err := tx.writes()
	if err != nil {
		return err
	}
	name := s.g.p.Name()
	// The live generation commits under the group's lock, so that a switch to a new generation
	// sees its position settled, and nothing it commits lands after the switch. A generation
	// being built commits without it: only its own handler can make it live, after this commit,
	// and its big batches would otherwise hold the live generation's commits back.
	s.g.mu.Lock()
	live := s.g.live == s
	if live {
		defer s.g.mu.Unlock()
	} else {
		s.g.mu.Unlock()
	}
	if s.retired.Load() {
		return nil
	}
	if live {
		// The cache before the store: a read process elsewhere learns of this commit from the
		// checkpoint in the store and then serves the shared cache, which must not hold the
		// documents as they were before it. Set for a commit that then fails, an entry holds
		// what the retry, or the next lease holder, writes again. A generation being built
		// stays out of the cache; it is warmed when it takes over.
		for _, w := range writes {
			if s.public[w.Coll] {
				r.cache.Set(ctx, CacheKey(w.Coll, w.Doc.ID), cache.Entry{Position: w.Doc.Position, Body: w.Doc.Body})
			}
		}
	}
	start := time.Now()
	if err := r.store.Commit(ctx, s.key, checkpoint, writes); err != nil {
		return fmt.Errorf("%s: commit up to %d: %w", s.key, checkpoint, err)
	}
	r.metrics.batchSeconds.WithLabelValues(s.key).Observe(time.Since(start).Seconds())
	r.metrics.applied.WithLabelValues(s.key).Add(float64(handled))
	r.metrics.position.WithLabelValues(s.key).Set(float64(checkpoint))
	s.applied.Add(int64(handled))
	s.position.Store(checkpoint)
	tx.remember()
	r.positions.Advance(s.key, checkpoint)
	if live {
		r.positions.Advance(name, checkpoint)
		if s.key != name {
			r.metrics.position.WithLabelValues(name).Set(float64(checkpoint))
		}
	}
	return nil
}

// promote makes s, a generation being built, the live one once it has caught up with the live
// one: the cache is warmed with its documents, its registration written, and the read API
// switched, all while the live generation cannot commit. The old generation is dropped later.
// Only s's handler goroutine may warm, since it owns s.hot.
func (r *Runner) promote(ctx context.Context, s *slot, warm bool) error {
	g := s.g
	name := g.p.Name()
	g.mu.Lock()
	defer g.mu.Unlock()
	cp := s.position.Load()
	if g.build != s || cp < r.positions.Position(name) {
		return nil
	}
	if warm {
		r.warm(ctx, s)
	}
	reg := g.reg.clone()
	old := reg.Live
	reg.Live, reg.Build = s.gen, nil
	reg.Retired = append(reg.Retired, old)
	if err := saveRegistration(ctx, r.store, name, &reg); err != nil {
		return err
	}
	g.reg = reg
	r.live.set(name, s.gen)
	r.positions.Advance(name, cp)
	r.metrics.position.WithLabelValues(name).Set(float64(cp))
	oldSlot := g.live
	if oldSlot != nil {
		oldSlot.retired.Store(true)
	}
	g.live, g.build = s, nil
	r.logger.Info("projection switched to its new generation", "projection", name,
		"generation", s.gen.N, "version", s.gen.Version, "position", cp, "replaced", old.N)
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		r.retire(name, oldSlot, old)
	}()
	return nil
}

// warm puts the documents the new generation has kept decoded, its recently written ones,
// into the cache. It runs on s's handler goroutine, which owns s.hot.
func (r *Runner) warm(ctx context.Context, s *slot) {
	n := 0
	s.hot.each(func(k docKey, h hotDoc) {
		coll := s.gen.name(k.coll)
		if !s.public[coll] {
			return
		}
		body, err := json.Marshal(h.val)
		if err != nil {
			return
		}
		r.cache.Set(ctx, CacheKey(coll, k.id), cache.Entry{Position: h.pos, Body: body})
		n++
	})
	r.logger.Debug("cache warmed for the new generation", "projection", s.key, "documents", n)
}

// retire stops a replaced generation's handler and, after the grace period, drops it.
func (r *Runner) retire(name string, old *slot, gen Generation) {
	r.mu.Lock()
	ctx := r.runCtx
	r.mu.Unlock()
	if old != nil {
		<-old.handler.Started()
		old.handler.Stop()
		select {
		case <-old.handler.Stopped():
		case <-ctx.Done():
			return
		}
		r.mu.Lock()
		delete(r.slots, old.key)
		delete(r.status, old.key)
		r.mu.Unlock()
	}
	select {
	case <-time.After(r.opts.DropGrace):
	case <-ctx.Done():
		return // the next start drops it
	}
	g := r.groups[name]
	if err := r.store.Drop(ctx, gen.key(name), r.collsOf(g.p, gen)); err != nil {
		r.logger.Error("drop a replaced generation", "projection", name, "generation", gen.N, "err", err)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	reg := g.reg.clone()
	reg.Retired = slices.DeleteFunc(reg.Retired, func(x Generation) bool { return x == gen })
	if err := saveRegistration(ctx, r.store, name, &reg); err != nil {
		r.logger.Error("record a dropped generation", "projection", name, "generation", gen.N, "err", err)
		return
	}
	g.reg = reg
	r.logger.Info("replaced generation dropped", "projection", name, "generation", gen.N)
}

func prefetch(ctx context.Context, tx *Tx, pf Prefetcher, events []Event, skips map[uint64]bool) error {
	byColl := map[string][]string{}
	seen := map[DocRef]bool{}
	for _, e := range events {
		if skips[e.Position] {
			continue
		}
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
// stalled; the subscriber then holds the projection at that event until an operator retries or
// skips it.
func (r *Runner) deadLetters(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		var ae *applyError
		if errors.As(err, &ae) {
			d := readstore.DeadLetter{Projection: ae.key, Position: ae.event.Position, EventID: ae.event.ID.String(),
				EventType: ae.event.Type, Error: ae.err.Error(), At: r.opts.Now().UTC()}
			if derr := r.store.AddDeadLetter(msg.Context(), d); derr != nil {
				r.logger.Error("record dead letter", "projection", ae.key, "position", d.Position, "err", derr)
			}
			r.metrics.deadLetters.WithLabelValues(ae.key).Inc()
			r.mu.Lock()
			s := r.slots[ae.key]
			r.mu.Unlock()
			if s != nil {
				s.stalledAt.Store(d.Position)
			}
			r.setStatus(ae.key, StatusStalled)
			r.logger.Error("projection stalled", "projection", ae.key, "position", d.Position, "type", d.EventType, "err", ae.err)
			stall(msg)
		}
		return out, err
	}
}

type runnerMetrics struct {
	position, lag, stalled *prometheus.GaugeVec
	applied, deadLetters   *prometheus.CounterVec
	skipped                *prometheus.CounterVec
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
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "skipped_total", Help: "Events an operator told the projection to pass over."}, []string{"projection"}),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "edutrack", Subsystem: "projection",
			Name: "batch_write_seconds", Help: "Time to commit one batch to the read store.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"projection"}),
	}
	for _, c := range []prometheus.Collector{m.position, m.lag, m.stalled, m.applied, m.deadLetters, m.skipped, m.batchSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
