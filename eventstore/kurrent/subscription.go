package kurrent

import (
	"context"
	"fmt"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/edutrack/edutrack/eventstore"
)

// Subscribe implements eventstore.Store with a catch-up subscription to $all that the server
// filters to events whose type does not start with $. ctx bounds only the call; the subscription
// lives until it or the store is closed.
//
// A goroutine receives from the server into a buffer that Next drains, so Next can honour its
// own context while the server has nothing to send. When the server's stream drops, that
// goroutine resubscribes after the last (commit, prepare) position it received, so the caller
// sees neither a gap nor a repeat.
func (s *Store) Subscribe(ctx context.Context, after uint64) (eventstore.Subscription, error) {
	what := fmt.Sprintf("subscribe to the log after %d", after)
	start := fromPosition(after)
	if after > 0 {
		// The server refuses to start past its end, where a caller may well be (a checkpoint
		// from before a restore, or "from now on"). Start at the last record instead, and let
		// the floor hold back what is not after the caller's position.
		head, err := s.lastRecord(ctx)
		if err != nil {
			return nil, s.fail(ctx, what, err)
		}
		if head.Commit < after {
			start = head
		}
	}
	life, cancel := context.WithCancel(s.life)
	sub := &subscription{
		store:  s,
		life:   life,
		cancel: cancel,
		items:  make(chan eventstore.RecordedEvent, s.opts.SubscriptionBuffer),
		done:   make(chan struct{}),
		last:   start,
		floor:  after,
	}
	stream, err := sub.open(ctx)
	if err != nil {
		cancel()
		return nil, s.fail(ctx, what, err)
	}
	// Close waits for the goroutine; so does Store.Close, which may come first.
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		stream.Close()
		cancel()
		return nil, fmt.Errorf("%s: %w", what, eventstore.ErrClosed)
	}
	s.subs.Add(1)
	s.mu.Unlock()
	go sub.run(stream)
	return sub, nil
}

type subscription struct {
	store  *Store
	life   context.Context // ends with Close or the store's Close
	cancel context.CancelFunc
	items  chan eventstore.RecordedEvent // closed by run when it stops
	done   chan struct{}                 // closed by run when it stops
	err    error                         // why run stopped; read after items is closed

	// Owned by run once it starts.
	client *kurrentdb.Client  // the client the current stream came from
	last   kurrentdb.Position // the last record received, delivered or skipped
	floor  uint64             // events at or before this commit position are not delivered
}

// open subscribes after sub.last. The server's stream lives in sub.life, while ctx can still
// abandon the handshake (which then closes the subscription).
func (sub *subscription) open(ctx context.Context) (*kurrentdb.Subscription, error) {
	stopAbandon := context.AfterFunc(ctx, sub.cancel)
	var stream *kurrentdb.Subscription
	err := sub.store.do(sub.life, func(c *kurrentdb.Client) error {
		var err error
		stream, err = c.SubscribeToAll(sub.life, kurrentdb.SubscribeToAllOptions{
			From:   allFrom(sub.last),
			Filter: kurrentdb.ExcludeSystemEventsFilter(),
		})
		if err == nil {
			sub.client = c
		}
		return err
	})
	if !stopAbandon() {
		if stream != nil {
			stream.Close()
		}
		return nil, ctx.Err()
	}
	return stream, err
}

// run receives events until the subscription closes, resubscribing whenever the server's
// stream drops.
func (sub *subscription) run(stream *kurrentdb.Subscription) {
	var stopped error
	defer func() {
		if stopped == nil {
			stopped = eventstore.ErrClosed
		}
		sub.err = stopped
		close(sub.items)
		close(sub.done)
		sub.store.subs.Done()
	}()
	wait := sub.store.opts.ResubscribeMin
	for {
		if stream == nil {
			timer := time.NewTimer(wait)
			select {
			case <-sub.life.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			wait = min(2*wait, sub.store.opts.ResubscribeMax)
			var err error
			if stream, err = sub.open(sub.life); err != nil {
				if sub.life.Err() != nil {
					return
				}
				if isPermanent(err) {
					stopped = fmt.Errorf("resubscribe to the log after %d: %w", sub.last.Commit, translate(err))
					return
				}
				sub.store.log.Warn("cannot resubscribe to the KurrentDB log; retrying", "after", sub.last.Commit, "wait", wait, "err", err)
				continue
			}
		}
		received, err := sub.follow(stream)
		stream.Close()
		stream = nil
		if sub.life.Err() != nil {
			return
		}
		if isPermanent(err) {
			stopped = fmt.Errorf("follow the log after %d: %w", sub.last.Commit, translate(err))
			return
		}
		if received {
			wait = sub.store.opts.ResubscribeMin
		}
		if needsNewClient(err) {
			sub.store.renew(sub.client, err)
		}
		sub.store.log.Warn("KurrentDB log subscription dropped; resuming", "after", sub.last.Commit, "err", err)
	}
}

// follow hands the stream's events to Next until the stream drops; received says whether any
// arrived.
func (sub *subscription) follow(stream *kurrentdb.Subscription) (received bool, err error) {
	for {
		ev := stream.Recv()
		switch {
		case ev.SubscriptionDropped != nil:
			return received, ev.SubscriptionDropped.Error
		case ev.EventAppeared == nil:
			continue // checkpoints, caught up, fell behind: positions are taken from events only
		}
		e := ev.EventAppeared.OriginalEvent()
		// After a resubscription, or from a server that starts at the given position rather than
		// after it, what is not strictly after the last record would be a repeat.
		if e == nil || !follows(e.Position, sub.last) {
			continue
		}
		received = true
		if isSystem(e) || e.Position.Commit <= sub.floor {
			sub.last = e.Position
			continue
		}
		select {
		case sub.items <- fromRecorded(e):
			sub.last = e.Position
		case <-sub.life.Done():
			return received, sub.life.Err()
		}
	}
}

// Next implements eventstore.Subscription.
func (sub *subscription) Next(ctx context.Context, n int) ([]eventstore.RecordedEvent, error) {
	if sub.life.Err() != nil {
		return nil, eventstore.ErrClosed
	}
	if n <= 0 {
		n = cap(sub.items)
	}
	var first eventstore.RecordedEvent
	select {
	case e, ok := <-sub.items:
		if !ok {
			return nil, sub.err
		}
		first = e
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-sub.life.Done():
		return nil, eventstore.ErrClosed
	}
	events := []eventstore.RecordedEvent{first}
	for len(events) < n {
		select {
		case e, ok := <-sub.items:
			if !ok {
				return events, nil
			}
			events = append(events, e)
		default:
			return events, nil
		}
	}
	return events, nil
}

// Close implements eventstore.Subscription; it returns once the receiving goroutine is gone.
func (sub *subscription) Close() error {
	sub.cancel()
	<-sub.done
	return nil
}
