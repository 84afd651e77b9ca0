// Package redischanges is the changes.Feed adapter on Redis pub/sub, which carries the
// projector's batches to every read process. Each batch is one message on one channel, the
// Batch as JSON. Like the cache, the feed is an accelerator, not a dependency: a publish that
// fails costs the projector a short timeout at most and never fails its commit, and every
// batch a subscriber may have missed (a failed publish, a lost connection) is made up for with
// a Resync.
package redischanges

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/edutrack/edutrack/projections/changes"
)

// Defaults that Options' zero values stand for.
const (
	// DefaultTimeout bounds each Publish, and the wait for Redis to confirm a Subscribe. A
	// PUBLISH to a healthy Redis takes well under a millisecond; a projector waits no longer
	// than this on a Redis that does not answer.
	DefaultTimeout = 100 * time.Millisecond
	// DefaultBreakerFailures publishes in a row that fail for want of Redis stop the feed from
	// calling it for DefaultBreakerCooldown: a hung Redis then costs the projector nothing.
	DefaultBreakerFailures = 3
	DefaultBreakerCooldown = time.Second
	// DefaultHealthCheck is how long a subscription waits on silence before it pings Redis, and
	// then on the answer before it takes the connection for dead and dials again.
	DefaultHealthCheck = time.Second
	// DefaultRetryDelay is how long a subscription that lost Redis waits between attempts.
	DefaultRetryDelay = 250 * time.Millisecond
	// DefaultBuffer is how many batches a subscriber may fall behind before it misses some.
	DefaultBuffer = 1024
	// DefaultLogEvery is the least time between two log lines about the same kind of failure.
	DefaultLogEvery = 5 * time.Second
)

// Options tune a Feed.
type Options struct {
	// Prefix is put before the channel's name, "changes": "edutrack:" gives "edutrack:changes".
	// Deployments (or tests) that share a Redis use different prefixes.
	Prefix string
	// Timeout bounds each Publish; 0 means DefaultTimeout. It bounds reads from a hung server
	// only if the client has ContextTimeoutEnabled (Open sets it).
	Timeout time.Duration
	// BreakerFailures and BreakerCooldown: after BreakerFailures publishes in a row fail for
	// want of Redis (timed out, no connection; not an error Redis answers), Publish does not call
	// it for BreakerCooldown and fails at once; then the next publish tries. 0 means the
	// defaults.
	BreakerFailures int
	BreakerCooldown time.Duration
	// HealthCheck and RetryDelay: see DefaultHealthCheck and DefaultRetryDelay; 0 means those.
	HealthCheck time.Duration
	RetryDelay  time.Duration
	// Buffer is how many batches a subscriber may leave unread before it misses some (and then
	// gets a Resync); 0 means DefaultBuffer.
	Buffer int
	// Registerer, if not nil, gets the feed's metrics: edutrack_changes_publish_errors_total,
	// edutrack_changes_publish_skipped_total and edutrack_changes_resyncs_total by reason. A
	// process has one Feed per registry.
	Registerer prometheus.Registerer
	// Logger, if not nil, logs failures, at most one line per LogEvery (0: DefaultLogEvery) for
	// each kind, and recoveries.
	Logger   *slog.Logger
	LogEvery time.Duration
}

// Feed is the change feed on Redis. It is safe for concurrent use.
type Feed struct {
	client  redis.UniversalClient
	owned   bool
	channel string
	opts    Options
	log     *slog.Logger
	breaker breaker
	// closing ends every subscription when the feed is closed.
	closing context.Context
	close   context.CancelFunc

	mu sync.Mutex
	// missed are the projections a batch of which may not have reached the subscribers: the
	// next publish sends a Resync of each before its batch.
	missed map[string]bool
	// retrying is true while a goroutine sends the missed Resyncs on their own (retryMissed).
	retrying bool
	retries  sync.WaitGroup

	publishLog, subscribeLog limiter
	errs, skipped            prometheus.Counter
	resyncs                  *prometheus.CounterVec // by reason
}

// Reasons of a Resync that a subscription delivers, as edutrack_changes_resyncs_total labels them.
const (
	reasonReconnect   = "reconnect"   // the subscription to Redis was lost, and is back
	reasonBehind      = "behind"      // the subscriber did not keep up
	reasonUndecodable = "undecodable" // a message on the channel was not a batch
)

// ErrCircuitOpen is why a Publish did not call Redis: publishes failed in a row just before.
var ErrCircuitOpen = errors.New("redischanges: circuit open, Redis not called")

// New returns a feed on client, which stays the caller's to close. Any go-redis client works;
// give it ContextTimeoutEnabled so that opts.Timeout bounds a publish to a hung server.
func New(client redis.UniversalClient, opts Options) (*Feed, error) {
	if client == nil {
		return nil, errors.New("redischanges: nil client")
	}
	for name, d := range map[string]time.Duration{"timeout": opts.Timeout, "breaker cooldown": opts.BreakerCooldown,
		"health check": opts.HealthCheck, "retry delay": opts.RetryDelay, "log interval": opts.LogEvery} {
		if d < 0 {
			return nil, fmt.Errorf("redischanges: negative %s %s", name, d)
		}
	}
	if opts.BreakerFailures < 0 || opts.Buffer < 0 {
		return nil, fmt.Errorf("redischanges: negative breaker failures %d or buffer %d", opts.BreakerFailures, opts.Buffer)
	}
	opts.Timeout = cmp.Or(opts.Timeout, DefaultTimeout)
	opts.BreakerFailures = cmp.Or(opts.BreakerFailures, DefaultBreakerFailures)
	opts.BreakerCooldown = cmp.Or(opts.BreakerCooldown, DefaultBreakerCooldown)
	opts.HealthCheck = cmp.Or(opts.HealthCheck, DefaultHealthCheck)
	opts.RetryDelay = cmp.Or(opts.RetryDelay, DefaultRetryDelay)
	opts.Buffer = cmp.Or(opts.Buffer, DefaultBuffer)
	opts.LogEvery = cmp.Or(opts.LogEvery, DefaultLogEvery)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Feed{client: client, channel: opts.Prefix + "changes", opts: opts, log: log, missed: map[string]bool{},
		breaker:      breaker{max: opts.BreakerFailures, cooldown: opts.BreakerCooldown},
		publishLog:   limiter{every: opts.LogEvery},
		subscribeLog: limiter{every: opts.LogEvery},
		errs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "changes", Name: "publish_errors_total",
			Help: "Change feed batches that Redis did not take (down, timed out, refused); read processes' clients are told to resync " +
				"by the next batch that goes through. The commit they announced stands."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "changes", Name: "publish_skipped_total",
			Help: "Change feed batches not sent because publishes had just failed in a row (the circuit was open); like an error, each is made up for by a resync."}),
		resyncs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "changes", Name: "resyncs_total",
			Help: "Resyncs this process's change feed subscriptions delivered of their own, by reason: reconnect (the subscription to " +
				"Redis was lost and is back), behind (the subscriber did not keep up), undecodable (a message that was not a batch)."},
			[]string{"reason"}),
	}
	for _, r := range []string{reasonReconnect, reasonBehind, reasonUndecodable} {
		f.resyncs.WithLabelValues(r) // at 0 from the start, so a rate over them is defined
	}
	if opts.Registerer != nil {
		for _, m := range []prometheus.Collector{f.errs, f.skipped, f.resyncs} {
			if err := opts.Registerer.Register(m); err != nil {
				return nil, fmt.Errorf("redischanges: register metrics: %w", err)
			}
		}
	}
	f.closing, f.close = context.WithCancel(context.Background())
	return f, nil
}

// Open returns a feed on the Redis at url (redis://[user:password@]host:port[/db][?options], or
// rediss:// for TLS; see redis.ParseURL). It does not contact the server: a Redis that is down
// at start-up is like one that goes down later. Close releases the client it opens.
func Open(url string, opts Options) (*Feed, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redischanges: parse url: %w", err)
	}
	// Short, as for the cache (see rediscache): a hung server must not hold connections for
	// go-redis's 5 s defaults. One dial attempt: go-redis dials in a goroutine that outlives the
	// operation, and retries would only pile them up against a dead server.
	o.DialTimeout = cmp.Or(o.DialTimeout, time.Second)
	o.ReadTimeout = cmp.Or(o.ReadTimeout, 200*time.Millisecond)
	o.WriteTimeout = cmp.Or(o.WriteTimeout, 200*time.Millisecond)
	o.DialerRetries = cmp.Or(o.DialerRetries, 1)
	o.ContextTimeoutEnabled = true
	client := redis.NewClient(o)
	f, err := New(client, opts)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	f.owned = true
	return f, nil
}

// Close ends every subscription (their channels close) and releases the client if Open created
// it.
func (f *Feed) Close() error {
	f.mu.Lock() // so that no retryMissed starts after the wait below
	f.close()
	f.mu.Unlock()
	f.retries.Wait()
	if !f.owned {
		return nil
	}
	return f.client.Close()
}

// Publish implements changes.Feed. It returns within Options.Timeout. Any error means that b
// may not have reached every subscriber: the next publish that goes through sends a Resync of
// b's projection first. ErrCircuitOpen says that Redis was not called.
func (f *Feed) Publish(ctx context.Context, b changes.Batch) error {
	body, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("redischanges: encode batch: %w", err)
	}
	missed := f.takeMissed()
	if !f.breaker.allow(time.Now()) {
		f.miss(missed, b.Projection)
		f.skipped.Inc()
		f.failed(b, ErrCircuitOpen)
		f.retryLater()
		return ErrCircuitOpen
	}
	opCtx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	if len(missed) == 0 {
		err = f.client.Publish(opCtx, f.channel, body).Err()
	} else {
		// One round trip, in order: each Resync reaches a subscriber before the batch.
		pipe := f.client.Pipeline()
		for _, p := range missed {
			resync, _ := json.Marshal(changes.Batch{Projection: p, Resync: true, CommittedAt: b.CommittedAt})
			pipe.Publish(opCtx, f.channel, resync)
		}
		pipe.Publish(opCtx, f.channel, body)
		_, err = pipe.Exec(opCtx)
	}
	if err != nil {
		f.miss(missed, b.Projection)
		if ctx.Err() == nil { // a caller that gave up says nothing about Redis
			f.errs.Inc()
			f.breaker.failed(time.Now(), !isReply(err))
			f.failed(b, err)
		}
		f.retryLater()
		return fmt.Errorf("redischanges: publish: %w", err)
	}
	if n := f.breaker.succeeded(); n > 0 {
		f.log.Info("change feed publishes again", "failed_in_a_row", n)
	}
	return nil
}

// retryLater sends the missed Resyncs on their own, every RetryDelay until one send goes
// through, unless a goroutine does so already: live clients then learn that they missed a change
// as soon as Redis takes publishes again, not at the next commit, which may be long after.
func (f *Feed) retryLater() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.retrying || f.closing.Err() != nil {
		return
	}
	f.retrying = true
	f.retries.Add(1)
	go f.retryMissed()
}

func (f *Feed) retryMissed() {
	defer f.retries.Done()
	t := time.NewTicker(f.opts.RetryDelay)
	defer t.Stop()
	for {
		select {
		case <-f.closing.Done():
			f.mu.Lock()
			f.retrying = false
			f.mu.Unlock()
			return
		case <-t.C:
		}
		f.mu.Lock()
		if len(f.missed) == 0 { // a Publish sent them
			f.retrying = false
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		if !f.breaker.allow(time.Now()) {
			continue
		}
		missed := f.takeMissed()
		if len(missed) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(f.closing, f.opts.Timeout)
		pipe := f.client.Pipeline()
		for _, p := range missed {
			resync, _ := json.Marshal(changes.Batch{Projection: p, Resync: true, CommittedAt: time.Now()})
			pipe.Publish(ctx, f.channel, resync)
		}
		_, err := pipe.Exec(ctx)
		cancel()
		if err != nil {
			f.mu.Lock()
			for _, p := range missed {
				f.missed[p] = true
			}
			f.mu.Unlock()
			if f.closing.Err() == nil {
				f.breaker.failed(time.Now(), !isReply(err))
			}
			continue
		}
		if n := f.breaker.succeeded(); n > 0 {
			f.log.Info("change feed publishes again: read processes tell their live clients to resync", "failed_in_a_row", n)
		}
	}
}

// failed logs a failed publish, at most once per LogEvery.
func (f *Feed) failed(b changes.Batch, err error) {
	if ok, held := f.publishLog.allow(time.Now()); ok {
		f.log.Warn("change feed publish failed: the commit stands, and read processes tell their live clients to resync "+
			"once a publish goes through", "projection", b.Projection, "err", err, "failures_not_logged", held)
	}
}

// takeMissed returns the projections to resync, and forgets them: a publish that fails gives
// them back through miss.
func (f *Feed) takeMissed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.missed) == 0 {
		return nil
	}
	out := make([]string, 0, len(f.missed))
	for p := range f.missed {
		out = append(out, p)
	}
	clear(f.missed)
	slices.Sort(out)
	return out
}

func (f *Feed) miss(projections []string, also string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range projections {
		f.missed[p] = true
	}
	f.missed[also] = true
}

// isReply tells an error Redis answered (NOAUTH, READONLY, ...), which came back at once, from
// one that cost a timeout or found no server.
func isReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, context.DeadlineExceeded)
}

// breaker stops publishing for a cooldown after failures in a row, so a hung Redis costs the
// projector a timeout per cooldown rather than one per batch. After the cooldown the next
// publishes go through, and one failure opens it again. It is deliberately minimal, for the
// shared circuit breaker to replace.
type breaker struct {
	max      int
	cooldown time.Duration

	mu        sync.Mutex
	failures  int // in a row
	openUntil time.Time
}

func (b *breaker) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures < b.max || !now.Before(b.openUntil)
}

// failed counts a failure; one that Redis answered at once (noServer false) breaks the run
// without counting, since it costs no time.
func (b *breaker) failed(now time.Time, noServer bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !noServer {
		b.failures = 0
		return
	}
	if b.failures++; b.failures >= b.max {
		b.openUntil = now.Add(b.cooldown)
	}
}

// succeeded closes the breaker and returns how many publishes had failed in a row before.
func (b *breaker) succeeded() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.failures
	b.failures = 0
	return n
}

// limiter lets one log line of a kind through per period, and counts the ones held back.
type limiter struct {
	every time.Duration

	mu   sync.Mutex
	last time.Time
	held int
}

func (l *limiter) allow(now time.Time) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.held++
		return false, 0
	}
	held, l.held, l.last = l.held, 0, now
	return true, held
}

var _ changes.Feed = (*Feed)(nil)
