package projections

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/edutrack/edutrack/eventstore"
)

// delivery is a batch of decoded events riding on a message's context. Passing the events in
// memory spares encoding each one into a payload and back, which would cap a rebuild at the
// codec's speed; the payload stays empty.
type delivery struct {
	events  []Event
	stalled atomic.Bool
}

type deliveryKey struct{}

func batchOf(msg *message.Message) []Event {
	if d, ok := msg.Context().Value(deliveryKey{}).(*delivery); ok {
		return d.events
	}
	return nil
}

// stall tells the subscriber not to redeliver msg: its projection stops there.
func stall(msg *message.Message) {
	if d, ok := msg.Context().Value(deliveryKey{}).(*delivery); ok {
		d.stalled.Store(true)
	}
}

// logSubscriber is a watermill Subscriber of one projection over the runner's feed of the log,
// from the projection's checkpoint. It sends one message per batch and waits for its ack before
// the next, so the projection sees the log in order. A nacked batch is sent again after a
// pause, unless the handler stalled it.
type logSubscriber struct {
	feed   *feed
	from   func(ctx context.Context) (uint64, error)
	batch  int
	linger time.Duration
	resume <-chan struct{} // an operator's retry or skip of the event the projection stalled at
	logger *slog.Logger

	mu      sync.Mutex
	cancels []context.CancelFunc
	wg      sync.WaitGroup
	closed  bool
}

func (s *logSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("subscriber closed")
	}
	ctx, cancel := context.WithCancel(ctx)
	s.cancels = append(s.cancels, cancel)
	out := make(chan *message.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		defer s.feed.leave(topic)
		s.follow(ctx, topic, out)
	}()
	return out, nil
}

func (s *logSubscriber) follow(ctx context.Context, topic string, out chan<- *message.Message) {
	for ctx.Err() == nil {
		after, err := s.from(ctx)
		if err == nil {
			err = s.deliver(ctx, topic, after, out)
		}
		if ctx.Err() != nil || errors.Is(err, eventstore.ErrClosed) {
			return
		}
		if errors.Is(err, errResumed) {
			continue
		}
		// Resume from the checkpoint; the position guard makes any event delivered twice
		// change nothing.
		s.logger.Warn("projection feed failed; resuming from the checkpoint", "projection", topic, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (s *logSubscriber) deliver(ctx context.Context, topic string, after uint64, out chan<- *message.Message) error {
	for {
		events, err := s.feed.next(ctx, topic, after, s.batch)
		if err != nil {
			return err
		}
		if s.linger > 0 && len(events) < s.batch/4 {
			// Live, events come a few at a time: wait a moment for more, so the read store
			// takes one commit for many events instead of one each.
			select {
			case <-time.After(s.linger):
			case <-ctx.Done():
				return ctx.Err()
			}
			for len(events) < s.batch && s.feed.available(events[len(events)-1].Position) {
				more, err := s.feed.next(ctx, topic, events[len(events)-1].Position, s.batch-len(events))
				if err != nil {
					return err
				}
				events = append(events[:len(events):len(events)], more...)
			}
		}
		d := &delivery{events: events}
		for wait := 100 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
			msg := message.NewMessage(watermill.NewUUID(), nil)
			msg.SetContext(context.WithValue(ctx, deliveryKey{}, d))
			select {
			case out <- msg:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case <-msg.Acked():
			case <-msg.Nacked():
				if d.stalled.Load() {
					s.feed.leave(topic)
					select { // held at the dead letter until an operator acts
					case <-s.resume:
						return errResumed
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				select {
				case <-time.After(wait):
					continue
				case <-ctx.Done():
					return ctx.Err()
				}
			case <-ctx.Done():
				return ctx.Err()
			}
			break
		}
		after = events[len(events)-1].Position
	}
}

// errResumed ends a delivery held at a dead letter: the projection starts again from its
// checkpoint.
var errResumed = errors.New("resumed by an operator")

func (s *logSubscriber) Close() error {
	s.mu.Lock()
	s.closed = true
	for _, c := range s.cancels {
		c()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
