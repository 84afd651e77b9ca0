// Package rediscircuit guards the calls to a Redis that its caller can do without: a circuit
// breaker that stops calling Redis after failures in a row for want of it, and probes it in the
// background until it answers again.
package rediscircuit

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker"
)

// Settings tune a Breaker. Each field is required: the packages that use a Breaker own their
// defaults, and the options and errors that name them.
type Settings struct {
	// Timeout bounds each operation and each probe.
	Timeout time.Duration
	// Failures is how many operations in a row must fail for want of Redis (timed out, no
	// server) for the circuit to open.
	Failures uint32
	// Cooldown is how long an open circuit leaves Redis alone before the next operation starts
	// a probe.
	Cooldown time.Duration
	// Logger gets OpenMessage as a warning when the circuit opens, with the state it left
	// ("from") and the Cooldown ("probe_every"), and ClosedMessage at info when it closes, with
	// the state it left.
	Logger        *slog.Logger
	OpenMessage   string
	ClosedMessage string
}

// Pinger is what a Breaker needs of a Redis client: its probe is a PING.
type Pinger interface {
	Ping(ctx context.Context) *redis.StatusCmd
}

// Breaker is a circuit breaker in front of one Redis. It is safe for concurrent use.
type Breaker struct {
	client  Pinger
	timeout time.Duration
	cb      *gobreaker.CircuitBreaker
	probing atomic.Bool // a probe of a half-open circuit is under way
}

// New returns a closed Breaker in front of client, which stays the caller's to close. It refuses
// a nil client or logger, an empty message and a Timeout, Failures or Cooldown that is not
// positive.
func New(client Pinger, s Settings) (*Breaker, error) {
	switch {
	case client == nil || s.Logger == nil:
		return nil, errors.New("rediscircuit: New needs a client and a logger")
	case s.Timeout <= 0 || s.Failures == 0 || s.Cooldown <= 0:
		return nil, errors.New("rediscircuit: timeout, failures and cooldown must be positive")
	case s.OpenMessage == "" || s.ClosedMessage == "":
		return nil, errors.New("rediscircuit: New needs the messages to log")
	}
	b := &Breaker{client: client, timeout: s.Timeout}
	b.cb = gobreaker.NewCircuitBreaker(gobreaker.Settings{
		MaxRequests: 1, // while half-open: the probe
		Timeout:     s.Cooldown,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= s.Failures },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			switch to {
			case gobreaker.StateOpen:
				s.Logger.Warn(s.OpenMessage, "from", from.String(), "probe_every", s.Cooldown)
			case gobreaker.StateClosed:
				s.Logger.Info(s.ClosedMessage, "from", from.String())
			}
		},
	})
	return b, nil
}

// ErrOpen is Do's error when it did not run the operation: the circuit is open, or half-open
// with its probe due or under way.
var ErrOpen = errors.New("rediscircuit: circuit open, operation not run")

// Do runs op with ctx bounded by the timeout and returns op's error, or ErrOpen at once, without
// running op, when the circuit is not closed; the first Do after the cooldown starts the probe.
// Only errors for want of Redis count against the circuit: not an error Redis answered
// (redis.Nil included), and not one with ctx ended, as a caller that gave up says nothing about
// Redis. A success, or an error that does not count, breaks the run of failures.
func (b *Breaker) Do(ctx context.Context, op func(ctx context.Context) error) error {
	if b.cb.State() != gobreaker.StateClosed {
		b.probe()
		return ErrOpen
	}
	var err error
	_, refused := b.cb.Execute(func() (any, error) {
		opCtx, cancel := context.WithTimeout(ctx, b.timeout)
		defer cancel()
		err = op(opCtx)
		if err == nil || isReply(err) || ctx.Err() != nil {
			return nil, nil
		}
		return nil, err
	})
	if errors.Is(refused, gobreaker.ErrOpenState) || errors.Is(refused, gobreaker.ErrTooManyRequests) {
		return ErrOpen // the circuit opened since the look above
	}
	return err
}

// probe starts, once the circuit is half-open (its cooldown over), the one call it lets through:
// a PING in a goroutine of its own, bounded by the timeout, so that no caller waits on a Redis
// that may still be down. The circuit closes if Redis answers, and opens again if not.
func (b *Breaker) probe() {
	if b.cb.State() != gobreaker.StateHalfOpen || !b.probing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer b.probing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
		defer cancel()
		_, _ = b.cb.Execute(func() (any, error) {
			if err := b.client.Ping(ctx).Err(); err != nil && !isReply(err) {
				return nil, err
			}
			return nil, nil
		})
	}()
}

// isReply tells an error Redis answered (OOM, READONLY, WRONGTYPE, redis.Nil, ...), which came
// back at once, from one that cost a timeout or found no server.
func isReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && !errors.Is(err, context.DeadlineExceeded)
}

// State is a circuit's state, numbered for a gauge.
type State int

// The states, as gobreaker numbers them.
const (
	Closed   State = iota // Redis is called
	HalfOpen              // the cooldown is over: a probe is due or under way
	Open                  // Redis is not called
)

// State is the circuit's state now.
func (b *Breaker) State() State { return State(b.cb.State()) }
