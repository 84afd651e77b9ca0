// Package rediscache is the cache.Cache adapter on Redis, shared by every read process. Redis is
// an accelerator, not a dependency: a circuit breaker stops calling it after consecutive
// failures, so an outage costs a read the store's time rather than a timeout per operation.
package rediscache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/edutrack/edutrack/internal/rediscircuit"
	"github.com/edutrack/edutrack/projections/cache"
)

// DefaultTimeout bounds each Get, Set and Delete when Options.Timeout is zero. A cache answer
// slower than this is worth less than going to the read store.
const DefaultTimeout = 50 * time.Millisecond

// Connection defaults that Open applies when the URL leaves them unset (a URL's dial_timeout,
// read_timeout, write_timeout win). They are small because a cache that stalls is worse than
// one that misses: the per-operation Timeout cuts each call short anyway, and these keep a dead
// or hung server from holding pooled connections for go-redis's 5 s defaults. PoolSize keeps
// go-redis's default, 10 per GOMAXPROCS: each read holds a connection for one round trip, so
// that covers far more concurrent reads than the read API has cores to serve.
const (
	DefaultDialTimeout  = time.Second
	DefaultReadTimeout  = 200 * time.Millisecond
	DefaultWriteTimeout = 200 * time.Millisecond
)

// Circuit breaker defaults, when Options leave them zero. Five timeouts in a row is a Redis that
// is gone, not a slow moment; a probe a second costs one PING in the background while it stays
// gone, and brings the cache back within a second of Redis.
const (
	DefaultBreakerFailures = 5
	DefaultBreakerCooldown = time.Second
)

// Options tune a Cache.
type Options struct {
	// Prefix is put before every key, e.g. "edutrack:", so several deployments or tests can
	// share one Redis. The value format follows it ("edutrack:v2:course_details:go").
	Prefix string
	// TTL is how long an entry lives after it is set; 0 keeps entries until Redis evicts them
	// (run Redis with a maxmemory policy) or they are deleted.
	TTL time.Duration
	// Timeout bounds each operation; 0 means DefaultTimeout. It bounds reads from a hung server
	// only if the client has ContextTimeoutEnabled (Open sets it).
	Timeout time.Duration
	// BreakerFailures is how many operations in a row must fail for want of Redis (timed out,
	// no connection) for the cache to stop calling it: the circuit opens, and operations then
	// miss or store nothing at once. 0 means DefaultBreakerFailures. Errors that Redis answers
	// (a full memory, a read-only replica) come back at once and do not count.
	BreakerFailures uint32
	// BreakerCooldown is how long an open circuit leaves Redis alone before it probes it with a
	// PING of its own, in the background, at the first operation after it: no operation waits
	// on a Redis that may still be down. The circuit closes when the probe succeeds, and stays
	// open another cooldown when it fails. 0 means DefaultBreakerCooldown.
	BreakerCooldown time.Duration
	// Registerer, if not nil, gets the cache's metrics: edutrack_cache_errors_total and
	// edutrack_cache_skipped_total by operation, and edutrack_cache_circuit_state. A process has
	// one Cache per registry.
	Registerer prometheus.Registerer
	// Logger, if not nil, logs the circuit opening and closing.
	Logger *slog.Logger
}

// Cache is the Redis cache. Each entry is one string value: a header of the position and AsOf,
// each as 8 big-endian bytes, then the body, so Get is one GET and Set one script call. It is
// safe for concurrent use.
type Cache struct {
	client  redis.UniversalClient
	owned   bool
	prefix  string
	ttlMS   int64
	timeout time.Duration
	circuit *rediscircuit.Breaker
	errors  atomic.Uint64
	errs    *prometheus.CounterVec // by operation: get, set, delete
	skipped *prometheus.CounterVec // by operation
	state   prometheus.GaugeFunc
}

// headerLen is the length of the header of a stored value: the position, then AsOf.
const headerLen = 16

// format is the first part of every key after the prefix. It names the layout of the values, so
// that a process of an earlier release, which read an 8-byte header, never meets a value of this
// one (it would serve AsOf as the start of the body), nor overwrites one.
const format = "v2:"

// setIfNewer writes ARGV[1] (the header then the body) to KEYS[1] unless the stored value has a
// later header: a later position, or the same position known current as of a later AsOf. It
// sets a TTL of ARGV[2] ms when it is positive. Headers are compared byte by byte: big-endian
// makes that the numeric order of (position, AsOf), and it stays exact above 2^53, where Lua's
// doubles do not (and Lua's < on strings follows the server's locale).
var setIfNewer = redis.NewScript(`
local old = redis.call('GETRANGE', KEYS[1], 0, 15)
if string.len(old) == 16 then
  for i = 1, 16 do
    local a, b = string.byte(old, i), string.byte(ARGV[1], i)
    if a > b then return 0 end
    if a < b then break end
  end
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
`)

// New returns a cache on client, which stays the caller's to close. Any go-redis client works,
// a Cluster one included (each operation touches one key). Give it ContextTimeoutEnabled so
// that opts.Timeout also bounds reads from a server that accepts but does not answer.
func New(client redis.UniversalClient, opts Options) (*Cache, error) {
	if client == nil {
		return nil, errors.New("rediscache: nil client")
	}
	if opts.TTL < 0 {
		return nil, fmt.Errorf("rediscache: negative TTL %s", opts.TTL)
	}
	if opts.TTL > 0 && opts.TTL < time.Millisecond {
		return nil, fmt.Errorf("rediscache: TTL %s is under Redis's 1ms resolution", opts.TTL)
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("rediscache: negative timeout %s", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.BreakerFailures == 0 {
		opts.BreakerFailures = DefaultBreakerFailures
	}
	if opts.BreakerCooldown < 0 {
		return nil, fmt.Errorf("rediscache: negative breaker cooldown %s", opts.BreakerCooldown)
	}
	if opts.BreakerCooldown == 0 {
		opts.BreakerCooldown = DefaultBreakerCooldown
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	circuit, err := rediscircuit.New(client, rediscircuit.Settings{
		Timeout:       opts.Timeout,
		Failures:      opts.BreakerFailures,
		Cooldown:      opts.BreakerCooldown,
		Logger:        log,
		OpenMessage:   "redis cache circuit open: reads go to the read store until Redis answers a probe",
		ClosedMessage: "redis cache circuit closed: Redis answers again",
	})
	if err != nil {
		return nil, fmt.Errorf("rediscache: %w", err)
	}
	c := &Cache{
		client:  client,
		prefix:  opts.Prefix + format,
		ttlMS:   opts.TTL.Milliseconds(),
		timeout: opts.Timeout,
		circuit: circuit,
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "cache",
			Name: "errors_total", Help: "Redis cache operations that failed (down, timed out, refused, a value that is " +
				"not an entry), by operation; each degraded to a miss, or to an entry not stored."}, []string{"op"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "edutrack", Subsystem: "cache",
			Name: "skipped_total", Help: "Redis cache operations not sent because the circuit was open (or half-open, " +
				"with its probe under way), by operation; each was a miss, or an entry not stored."}, []string{"op"}),
	}
	c.state = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "edutrack", Subsystem: "cache",
		Name: "circuit_state", Help: "The Redis cache's circuit breaker: 0 closed (Redis in use), 1 half-open " +
			"(one operation probes it), 2 open (not called: reads go to the read store)."},
		func() float64 { return float64(c.circuit.State()) })
	for _, op := range []string{opGet, opSet, opDelete} {
		// Exported at 0 from the start, so a rate over them is defined.
		c.errs.WithLabelValues(op)
		c.skipped.WithLabelValues(op)
	}
	if opts.Registerer != nil {
		for _, m := range []prometheus.Collector{c.errs, c.skipped, c.state} {
			if err := opts.Registerer.Register(m); err != nil {
				return nil, fmt.Errorf("rediscache: register metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Operations, as the metrics name them.
const (
	opGet    = "get"
	opSet    = "set"
	opDelete = "delete"
)

// Open returns a cache on the Redis at url (redis://[user:password@]host:port[/db][?options],
// or rediss:// for TLS; see redis.ParseURL for the options). It does not contact the server: a
// Redis that is down at start-up degrades to misses like one that goes down later. Close
// releases the client it opens.
func Open(url string, opts Options) (*Cache, error) {
	o, err := clientOptions(url)
	if err != nil {
		return nil, err
	}
	client := redis.NewClient(o)
	c, err := New(client, opts)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	c.owned = true
	return c, nil
}

// clientOptions parses url and applies the production defaults the URL leaves unset.
func clientOptions(url string) (*redis.Options, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("rediscache: parse url: %w", err)
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	// One dial attempt, not go-redis's five with backoff: the dial runs in a goroutine of its own
	// that outlives the operation's context, so retries only keep goroutines and half-open
	// sockets around a dead server. The next operation dials again, and after PoolSize failed
	// dials go-redis fails fast and probes the server once a second until it is back.
	if o.DialerRetries == 0 {
		o.DialerRetries = 1
	}
	// Without it go-redis ignores the context's deadline on socket reads and writes, and a hung
	// server would hold each call for ReadTimeout instead of Options.Timeout.
	o.ContextTimeoutEnabled = true
	return o, nil
}

// Close releases the client if Open created it; a client given to New is left open.
func (c *Cache) Close() error {
	if !c.owned {
		return nil
	}
	return c.client.Close()
}

// Errors counts the operations that Redis failed (down, timed out, a value that is not an
// entry), as edutrack_cache_errors_total does by operation. Each one degraded to a miss or a
// skipped write.
func (c *Cache) Errors() uint64 { return c.errors.Load() }

// Ping reports whether Redis answers, for readiness checks. Unlike the cache operations it
// returns the error, and it goes to Redis whatever the circuit's state; it is not counted in
// Errors. The cache does without Redis, so register it as a non-critical check.
func (c *Cache) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.client.Ping(ctx).Err()
}

// ErrNotStored is the error of a Set that Redis did not confirm: the key may hold an older entry.
var ErrNotStored = errors.New("rediscache: entry not stored")

// ErrCircuitOpen is why an operation did not reach Redis: its circuit is open.
var ErrCircuitOpen = errors.New("rediscache: circuit open, Redis not called")

// call runs op against Redis through the circuit and returns its error: ErrCircuitOpen when it
// did not run, or the caller's when it had gone already. A miss (redis.Nil) is no error to count.
func (c *Cache) call(ctx context.Context, name string, op func(ctx context.Context) error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	err := c.circuit.Do(ctx, op)
	if errors.Is(err, rediscircuit.ErrOpen) {
		c.skipped.WithLabelValues(name).Inc()
		return ErrCircuitOpen
	}
	if err != nil && !errors.Is(err, redis.Nil) {
		c.failed(ctx, name)
	}
	return err
}

// Get implements cache.Cache.
func (c *Cache) Get(ctx context.Context, key string) (cache.Entry, bool) {
	var v string
	err := c.call(ctx, opGet, func(ctx context.Context) (err error) {
		v, err = c.client.Get(ctx, c.prefix+key).Result()
		return err
	})
	if err != nil {
		return cache.Entry{}, false
	}
	if len(v) < headerLen {
		c.failed(ctx, opGet)
		return cache.Entry{}, false
	}
	return cache.Entry{
		Position: binary.BigEndian.Uint64([]byte(v[:8])),
		AsOf:     binary.BigEndian.Uint64([]byte(v[8:headerLen])),
		Body:     []byte(v[headerLen:]),
	}, true
}

// Set implements cache.Cache. Any error wraps ErrNotStored, and ErrCircuitOpen when Redis was not
// called.
func (c *Cache) Set(ctx context.Context, key string, e cache.Entry) error {
	err := c.call(ctx, opSet, func(ctx context.Context) error {
		v := make([]byte, headerLen+len(e.Body))
		binary.BigEndian.PutUint64(v, e.Position)
		binary.BigEndian.PutUint64(v[8:], e.ValidAsOf())
		copy(v[headerLen:], e.Body)
		return setIfNewer.Run(ctx, c.client, []string{c.prefix + key}, v, c.ttlMS).Err()
	})
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotStored, key, err)
	}
	return nil
}

// Delete implements cache.Cache.
func (c *Cache) Delete(ctx context.Context, key string) {
	_ = c.call(ctx, opDelete, func(ctx context.Context) error { return c.client.Del(ctx, c.prefix+key).Err() })
}

// failed counts an error unless the caller gave up first: a cancelled request says nothing about
// Redis, and counting it would page someone for clients that hang up.
func (c *Cache) failed(callerCtx context.Context, op string) {
	if callerCtx.Err() == nil {
		c.errors.Add(1)
		c.errs.WithLabelValues(op).Inc()
	}
}

var _ cache.Cache = (*Cache)(nil)
