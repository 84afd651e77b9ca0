package projections

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/edutrack/edutrack/eventstore"
)

// feed reads and decodes the log once for every projection of a runner. It follows the log from
// the lowest checkpoint and keeps a window of recent decoded events; a projection inside the
// window takes its batches from it, and one behind it (a rebuild while the others run live)
// reads the log itself. Reading and decoding were half of what projections cost when each did
// its own.
type feed struct {
	log     Log
	decoder Decoder
	batch   int
	window  int // events kept, and how far the feed reads ahead of its slowest consumer
	logger  *slog.Logger

	mu        sync.Mutex
	events    []Event // in position order; never written in place, so handed-out slices stay valid
	start     uint64  // the window holds the events after start, up to end
	end       uint64
	consumers map[string]uint64 // the position each projection last asked after
	wake      chan struct{}     // closed and replaced when the window grows or a consumer moves
	err       error             // why the feed stopped
}

func newFeed(log Log, decoder Decoder, batch int, logger *slog.Logger) *feed {
	return &feed{log: log, decoder: decoder, batch: batch, window: 4 * batch, logger: logger,
		consumers: map[string]uint64{}, wake: make(chan struct{})}
}

func (f *feed) broadcast() {
	close(f.wake)
	f.wake = make(chan struct{})
}

// decode turns recorded events into Events; an event that does not decode carries its error,
// for the projection to report at that event.
func (f *feed) decode(recorded []eventstore.RecordedEvent) []Event {
	out := make([]Event, len(recorded))
	for i, re := range recorded {
		data, err := f.decoder.Decode(re.Type, re.Data)
		out[i] = Event{RecordedEvent: re, Data: data, err: err}
	}
	return out
}

// run follows the log from after until ctx ends.
func (f *feed) run(ctx context.Context, after uint64) {
	f.mu.Lock()
	f.start, f.end = after, after
	// A projection that asked before the feed knew where it starts waits on the window; one
	// behind it must learn now that it reads the log for itself, since on a quiet log no
	// event would ever wake it.
	f.broadcast()
	f.mu.Unlock()
	for ctx.Err() == nil {
		sub, err := f.log.Subscribe(ctx, f.end)
		if err == nil {
			err = f.follow(ctx, sub)
			sub.Close()
		}
		if ctx.Err() != nil || errors.Is(err, eventstore.ErrClosed) {
			break
		}
		f.logger.Warn("log subscription dropped; resuming", "after", f.end, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	f.mu.Lock()
	f.err = context.Cause(ctx)
	if f.err == nil {
		f.err = eventstore.ErrClosed
	}
	f.broadcast()
	f.mu.Unlock()
}

func (f *feed) follow(ctx context.Context, sub eventstore.Subscription) error {
	for {
		// Read ahead of the consumers by at most the window.
		f.mu.Lock()
		for f.ahead() && ctx.Err() == nil {
			wake := f.wake
			f.mu.Unlock()
			select {
			case <-wake:
			case <-ctx.Done():
			}
			f.mu.Lock()
		}
		f.mu.Unlock()
		recorded, err := sub.Next(ctx, f.batch)
		if err != nil {
			return err
		}
		events := f.decode(recorded)
		f.mu.Lock()
		// Appending never touches the elements handed out, only those past them.
		all := append(f.events, events...)
		if drop := len(all) - f.window; drop > 0 {
			f.start = all[drop-1].Position
			all = all[drop:]
		}
		f.events, f.end = all, events[len(events)-1].Position
		f.broadcast()
		f.mu.Unlock()
	}
}

// ahead reports whether the feed is a whole window past its fastest consumer: it follows the
// projections at the front, and one far behind (rebuilding) reads for itself instead of holding
// the others back. f.mu is held.
func (f *feed) ahead() bool {
	if len(f.consumers) == 0 {
		return true // nobody to read for yet
	}
	var fastest uint64
	for _, p := range f.consumers {
		fastest = max(fastest, p)
	}
	return f.end > fastest && f.end-fastest >= uint64(f.window)
}

// next returns up to max events after position after, for the named projection, waiting for
// them when there are none yet.
func (f *feed) next(ctx context.Context, name string, after uint64, max int) ([]Event, error) {
	f.mu.Lock()
	if p, ok := f.consumers[name]; !ok || p != after {
		f.consumers[name] = after
		f.broadcast() // the feed may be waiting for its slowest consumer to move
	}
	for {
		switch {
		case f.err != nil:
			err := f.err
			f.mu.Unlock()
			return nil, err
		case after < f.start:
			// Behind the window: read for ourselves.
			f.mu.Unlock()
			recorded, err := f.log.ReadAll(ctx, after, max)
			if err != nil {
				return nil, err
			}
			if len(recorded) > 0 {
				return f.decode(recorded), nil
			}
			f.mu.Lock()
			continue
		case after < f.end:
			i := sort.Search(len(f.events), func(i int) bool { return f.events[i].Position > after })
			out := f.events[i:min(len(f.events), i+max)]
			f.mu.Unlock()
			return out, nil
		}
		wake := f.wake
		f.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		f.mu.Lock()
	}
}

// available reports whether events after position after are in the window already.
func (f *feed) available(after uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return after >= f.start && after < f.end
}

// leave forgets a projection that stopped consuming, so it no longer holds the feed back.
func (f *feed) leave(name string) {
	f.mu.Lock()
	delete(f.consumers, name)
	f.broadcast()
	f.mu.Unlock()
}
