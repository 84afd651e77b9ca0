package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edutrack/edutrack/internal/rediscircuit"
)

// Defaults of RedisOptions.
const (
	DefaultPrefix          = "edutrack:ratelimit:"
	DefaultTimeout         = 50 * time.Millisecond
	DefaultBreakerFailures = 5
	DefaultBreakerCooldown = time.Second
)

// RedisOptions tune a Redis limiter.
type RedisOptions struct {
	// Prefix is put before every key (default DefaultPrefix).
	Prefix string
	// Timeout bounds each decision (default DefaultTimeout); past it the process decides alone.
	Timeout time.Duration
	// BreakerFailures is how many decisions in a row Redis must fail for want of an answer
	// (timed out, no connection) for the limiter to stop asking it and decide in process at once
	// (default DefaultBreakerFailures): every request makes two decisions, and a hung Redis
	// would otherwise add two timeouts to each.
	BreakerFailures uint32
	// BreakerCooldown is how long the limiter then leaves Redis alone before it probes it with a
	// PING in the background (default DefaultBreakerCooldown); it asks Redis again once the
	// probe succeeds.
	BreakerCooldown time.Duration
}

// gcra spends one request of KEYS[1]'s budget: ARGV[1] is the interval and ARGV[2] the
// tolerance, in microseconds. It returns 0 when the request fits, else the wait in microseconds.
// Time comes from Redis's own clock, so processes whose clocks disagree still share one budget.
// The theoretical arrival time is written with %.0f: Lua's default number format would round
// it to 14 digits.
var gcra = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - tolerance - now
if wait > 0 then return wait end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return 0
`)

// Redis keeps budgets in Redis, shared by every process that uses the same server and prefix.
// When Redis fails or is slow it falls back to a budget in this process, so an outage neither
// blocks every request nor lifts every limit. It is safe for concurrent use.
type Redis struct {
	client   redis.UniversalClient
	prefix   string
	log      *slog.Logger
	fallback *Memory
	circuit  *rediscircuit.Breaker
	errors   atomic.Uint64
	warned   atomic.Int64 // unix nanoseconds of the last warning
}

// warnEvery spaces the warnings of a Redis outage, which would otherwise log every request.
const warnEvery = time.Minute

// NewRedis returns a limiter on client, which stays the caller's to close.
func NewRedis(client redis.UniversalClient, log *slog.Logger, opts RedisOptions) (*Redis, error) {
	if client == nil || log == nil {
		return nil, errors.New("ratelimit: NewRedis needs a client and a logger")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.Timeout < 0 {
		return nil, fmt.Errorf("ratelimit: negative timeout %s", opts.Timeout)
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.BreakerFailures == 0 {
		opts.BreakerFailures = DefaultBreakerFailures
	}
	if opts.BreakerCooldown < 0 {
		return nil, fmt.Errorf("ratelimit: negative breaker cooldown %s", opts.BreakerCooldown)
	}
	if opts.BreakerCooldown == 0 {
		opts.BreakerCooldown = DefaultBreakerCooldown
	}
	circuit, err := rediscircuit.New(client, rediscircuit.Settings{
		Timeout:       opts.Timeout,
		Failures:      opts.BreakerFailures,
		Cooldown:      opts.BreakerCooldown,
		Logger:        log,
		OpenMessage:   "rate limits: Redis circuit open; each process decides alone until Redis answers a probe",
		ClosedMessage: "rate limits: Redis circuit closed; budgets are shared again",
	})
	if err != nil {
		return nil, fmt.Errorf("ratelimit: %w", err)
	}
	return &Redis{client: client, prefix: opts.Prefix, log: log, fallback: NewMemory(), circuit: circuit}, nil
}

// Allow implements Limiter.
func (l *Redis) Allow(ctx context.Context, key string, lim Limit) Decision {
	var wait int64
	err := l.circuit.Do(ctx, func(ctx context.Context) (err error) {
		wait, err = gcra.Run(ctx, l.client, []string{l.key(key)},
			lim.interval().Microseconds(), lim.tolerance().Microseconds()).Int64()
		return err
	})
	if errors.Is(err, rediscircuit.ErrOpen) {
		return l.fallback.Allow(ctx, key, lim) // Redis was not asked, so it did not fail
	}
	if err != nil {
		l.errors.Add(1)
		now, last := time.Now().UnixNano(), l.warned.Load()
		if now-last > int64(warnEvery) && l.warned.CompareAndSwap(last, now) {
			l.log.WarnContext(ctx, "rate limit in Redis failed; deciding in process", "err", err)
		}
		return l.fallback.Allow(ctx, key, lim)
	}
	if wait > 0 {
		return Decision{RetryAfter: time.Duration(wait) * time.Microsecond}
	}
	return Decision{Allowed: true}
}

// CircuitState is the state of the circuit breaker in front of Redis: 0 closed (Redis decides),
// 1 half-open (a probe is due or under way), 2 open (each process decides alone); export it as
// a gauge.
func (l *Redis) CircuitState() int { return int(l.circuit.State()) }

// key hashes the budget's name: names hold client addresses and user ids, which have no
// business being readable by whoever can list the keys of a shared Redis.
func (l *Redis) key(name string) string {
	sum := sha256.Sum256([]byte(name))
	return l.prefix + hex.EncodeToString(sum[:16])
}

// Errors counts the decisions Redis failed and the process made alone; export it as a metric.
func (l *Redis) Errors() uint64 { return l.errors.Load() }
