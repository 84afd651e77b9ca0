package projections

import (
	"context"
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

	"github.com/edutrack/edutrack/projections/cache"
	"github.com/edutrack/edutrack/projections/readstore"
)

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
	// handlersStarting is held while a RunHandlers call of Rebuild starts a handler. watermill
	// closes a handler's Started channel before it sets what Stop reads, so retire waits for
	// the call that started the handler to return (the router's Running, for the first ones).
	handlersStarting sync.Mutex
	bg               sync.WaitGroup
}

// group is one projection: its registration and the generations running.
type group struct {
	p Projector
	// announcing keeps the projection's batches on the change feed in the order of its commits.
	announcing sync.Mutex
	// mu orders the live generation's commits against a switch to a new generation, and
	// guards the fields below.
	mu    sync.Mutex
	reg   registration
	live  *slot // nil while the live generation's code version is gone (it is frozen, still serving)
	build *slot
	// ahead is set when the live generation's checkpoint was found past the log's head: its
	// read models hold events the log no longer has. A build must then reach floor, the head
	// when it was found, before it goes live.
	ahead bool
	floor uint64
}

// slot is one generation of a projection, run by one watermill handler.
type slot struct {
	g      *group
	gen    Generation
	key    string
	names  map[string]string // collection -> its name in this generation
	public map[string]string // this generation's names of the collections served by id -> the read API's
	// announced adds the listings to public: what the change feed announces.
	announced map[string]string
	hot       *docCache     // only the slot's handler goroutine touches it
	resume    chan struct{} // an operator's retry or skip
	handler   *message.Handler

	retired   atomic.Bool   // replaced: commits nothing more
	cacheDown bool          // its last batch's cache writes failed; only its handler goroutine touches it
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
	// StatusAhead: the read models hold events the log does not (it was restored from an older
	// copy, or lost its tail); they are not served as healthy until rebuilt from the log.
	StatusAhead = "ahead of the log"
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
	if opts.HeadCheckEvery <= 0 {
		opts.HeadCheckEvery = time.Second
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
	// watermill's info lines (handlers added, started, stopped) are details of EduTrack's own:
	// debug lines in its log. Its warnings and errors stay what they are.
	wmLog := watermill.NewSlogLoggerWithLevelMapping(logger, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 30 * time.Second}, wmLog)
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
			Logger:          wmLog,
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
	s := &slot{g: g, gen: gen, key: gen.key(g.p.Name()), names: map[string]string{}, public: map[string]string{},
		hot: newDocCache(r.opts.HotDocuments), resume: make(chan struct{}, 1), started: time.Now()}
	for _, c := range g.p.ReadModels() {
		s.names[c] = gen.name(c)
	}
	s.announced = map[string]string{}
	for _, c := range g.p.Listings() {
		s.announced[gen.name(c)] = c
	}
	for _, c := range g.p.Collections() {
		s.names[c] = gen.name(c)
		s.public[gen.name(c)] = c
		s.announced[gen.name(c)] = c
	}
	// Series from the start, at 0, so that an alert on their increase fires at the first one.
	r.metrics.deadLetters.WithLabelValues(s.key)
	r.metrics.stalled.WithLabelValues(s.key)
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
	head, err := r.log.Head(ctx)
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
		// A checkpoint past the log's head means the log went back (a restore from an older copy):
		// the read models hold events it no longer has, and new events will reuse their
		// positions. Rebuild from the log, beside, as for a new version; a build that went
		// past the head too starts again.
		liveCP, err := r.store.Checkpoint(ctx, reg.Live.key(name))
		if err != nil {
			return 0, err
		}
		ahead := liveCP > head
		if ahead && reg.Build != nil {
			if cp, err := r.store.Checkpoint(ctx, reg.Build.key(name)); err != nil {
				return 0, err
			} else if cp > head {
				if err := r.store.Drop(ctx, reg.Build.key(name), r.collsOf(g.p, *reg.Build)); err != nil {
					return 0, err
				}
				reg.Build = nil
			}
		}
		if ahead {
			r.logger.Error("a projection's read models are ahead of the event log: they hold events the log no longer has "+
				"(was the log restored from an older copy?). Rebuilding them from the log beside the live ones; the projection "+
				"is reported not ready until the rebuilt generation is live", "projection", name, "checkpoint", liveCP, "head", head)
		}
		if (reg.Live.Version != g.p.Version() || ahead) && reg.Build == nil {
			reg.Last++
			reg.Build = &Generation{N: reg.Last, Version: g.p.Version()}
			if !ahead {
				r.logger.Info("projector version changed: building its read models beside the live ones",
					"projection", name, "live_version", reg.Live.Version, "version", g.p.Version(), "generation", reg.Last)
			}
		}
		if err := saveRegistration(ctx, r.store, name, &reg); err != nil {
			return 0, err
		}
		var live, build *slot
		if reg.Live.Version == g.p.Version() && !ahead {
			live = r.newSlot(g, reg.Live)
		}
		if reg.Build != nil {
			build = r.newSlot(g, *reg.Build)
		}
		// The fence before any position: a reader trusts no cache entry of the projection until
		// it knows the fence, which a failed cache write of an earlier run may have raised.
		fences, err := loadFences(ctx, r.store, []string{reg.Live.key(name)})
		if err != nil {
			return 0, err
		}
		r.positions.RaiseCacheFence(name, fences[reg.Live.key(name)])
		r.live.set(name, reg.Live)
		if live != nil {
			cp, err := r.prepare(ctx, live)
			if err != nil {
				return 0, err
			}
			from = max(from, cp)
			r.positions.Advance(name, cp)
			r.metrics.position.WithLabelValues(name).Set(float64(cp))
		} else if !ahead {
			// The old version serves, frozen, until the new one takes over.
			r.positions.Advance(name, liveCP)
		} else {
			// Nothing of the log is in these read models as far as a reader can tell: a read
			// that names a position waits for the rebuilt generation.
			r.positions.Advance(name, 0)
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
		r.metrics.ahead.WithLabelValues(name).Set(map[bool]float64{true: 1, false: 0}[ahead])
		r.metrics.skipped.WithLabelValues(name)
		g.mu.Lock()
		g.reg, g.live, g.build = reg, live, build
		g.ahead, g.floor = ahead, 0
		if ahead {
			g.floor = head
		}
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
	r.announceStart(ctx)
	feedCtx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	go r.feed.run(feedCtx, from)
	r.bg.Add(1)
	go func() { defer r.bg.Done(); r.reportProgress(ctx) }()
	r.bg.Add(1)
	go func() { defer r.bg.Done(); r.watchHead(ctx) }()
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
	live, build, ahead := g.live, g.build, g.ahead
	g.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case ahead:
		return StatusAhead
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
