package redischanges

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/edutrack/edutrack/projections/changes"
)

// subscription is one Subscribe: its own connection to Redis, read by one goroutine that
// forwards batches to out without ever waiting for the subscriber.
type subscription struct {
	f   *Feed
	out chan changes.Batch
	// missed: a batch did not fit in out; a Resync goes first once there is room. Only the
	// goroutine touches it.
	missed bool

	mu    sync.Mutex
	ps    *redis.PubSub
	ended bool
}

// Subscribe implements changes.Feed. It returns once Redis has confirmed the subscription, or
// after Options.Timeout without: then, as whenever the connection is lost, the subscription
// keeps trying, and delivers a Resync once Redis confirms it. A subscription ends when ctx does
// or the feed is closed.
func (f *Feed) Subscribe(ctx context.Context) (<-chan changes.Batch, error) {
	ctx, cancel := context.WithCancel(ctx)
	unlink := context.AfterFunc(f.closing, cancel)
	s := &subscription{f: f, out: make(chan changes.Batch, f.opts.Buffer)}
	// Batches published before Redis has the subscription do not reach it: "from now on" holds
	// once it is confirmed.
	lost := !s.confirmed(ctx)
	stop := context.AfterFunc(ctx, s.end)
	go func() {
		defer close(s.out)
		defer unlink()
		defer stop()
		defer s.end()
		defer cancel()
		s.run(ctx, lost)
	}()
	return s.out, nil
}

// confirmed subscribes, and waits up to the timeout for Redis to confirm it.
func (s *subscription) confirmed(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, s.f.opts.Timeout)
	defer cancel()
	// The deadline bounds the dial and the handshake too, which would otherwise wait on a hung
	// server for as long as the client's read timeout.
	s.ps = s.f.client.Subscribe(ctx, s.f.channel)
	msg, err := s.ps.ReceiveTimeout(ctx, s.f.opts.Timeout)
	sub, ok := msg.(*redis.Subscription)
	return err == nil && ok && sub.Kind == "subscribe"
}

func (s *subscription) current() *redis.PubSub {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ps
}

// end closes the connection, which also cuts short a receive under way.
func (s *subscription) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended {
		s.ended = true
		_ = s.ps.Close()
	}
}

// redial replaces a connection that no longer answers: go-redis dials again by itself only after
// an error, and a hung server sends none.
func (s *subscription) redial(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, s.f.opts.Timeout)
	defer cancel()
	ps := s.f.client.Subscribe(ctx, s.f.channel)
	s.mu.Lock()
	old := s.ps
	if s.ended {
		old = ps
	} else {
		s.ps = ps
	}
	s.mu.Unlock()
	_ = old.Close()
}

// run receives until ctx ends. lost says that batches may have been missed since the
// subscription began: the next confirmation of it by Redis delivers a Resync.
func (s *subscription) run(ctx context.Context, lost bool) {
	pinged := false // silence, then a PING: another silence means a dead connection
	for {
		ps := s.current()
		msg, err := s.receive(ctx, ps)
		if ctx.Err() != nil {
			return
		}
		var netErr net.Error
		switch {
		case err != nil && errors.As(err, &netErr) && netErr.Timeout() && !pinged:
			pinged = true
			s.ping(ctx, ps) // a failure shows at the next receive
			continue
		case err != nil && errors.As(err, &netErr) && netErr.Timeout():
			s.lose(&lost, errors.New("no answer to a ping"))
			pinged = false
			s.redial(ctx)
			continue
		case err != nil:
			// The connection failed; go-redis dials again at the next receive.
			s.lose(&lost, err)
			pinged = false
			select {
			case <-ctx.Done():
				return
			case <-time.After(s.f.opts.RetryDelay):
			}
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && lost {
				lost = false
				s.f.log.Info("change feed subscription restored: its subscriber is told to resync")
				s.resync(reasonReconnect)
			}
		case *redis.Message:
			var b changes.Batch
			if err := json.Unmarshal([]byte(m.Payload), &b); err != nil {
				if ok, held := s.f.subscribeLog.allow(time.Now()); ok {
					s.f.log.Warn("change feed message is not a batch: its subscriber is told to resync", "channel", m.Channel,
						"err", err, "failures_not_logged", held)
				}
				s.resync(reasonUndecodable)
				continue
			}
			s.deliver(b)
		}
	}
}

// receive waits up to the health check's interval for a message. go-redis dials again within
// it after a failed connection: the deadline bounds that too.
func (s *subscription) receive(ctx context.Context, ps *redis.PubSub) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, s.f.opts.HealthCheck+s.f.opts.Timeout)
	defer cancel()
	return ps.ReceiveTimeout(ctx, s.f.opts.HealthCheck)
}

func (s *subscription) ping(ctx context.Context, ps *redis.PubSub) {
	ctx, cancel := context.WithTimeout(ctx, s.f.opts.Timeout)
	defer cancel()
	_ = ps.Ping(ctx)
}

// lose notes that the connection was lost, once per loss.
func (s *subscription) lose(lost *bool, err error) {
	if *lost {
		return
	}
	*lost = true
	if ok, held := s.f.subscribeLog.allow(time.Now()); ok {
		s.f.log.Warn("change feed subscription lost: it tries again, and its subscriber is told to resync once it is back",
			"err", err, "failures_not_logged", held)
	}
}

func (s *subscription) resync(reason string) {
	s.f.resyncs.WithLabelValues(reason).Inc()
	s.deliver(changes.Batch{Resync: true})
}

// deliver hands b to the subscriber if there is room, and otherwise notes that it missed one.
func (s *subscription) deliver(b changes.Batch) {
	if s.missed {
		select {
		case s.out <- changes.Batch{Resync: true, CommittedAt: b.CommittedAt}:
			s.missed = false
			s.f.resyncs.WithLabelValues(reasonBehind).Inc()
		default:
			return
		}
	}
	select {
	case s.out <- b:
	default:
		s.missed = true
	}
}
