// Package changes is the change feed of the read models: after each commit a projector says
// which documents changed and at what position, and read processes learn of it, to push the new
// documents to their live clients. The feed carries keys and positions, never documents: a
// reader reads the document through its cache, as any read does. Memory serves one process;
// package redischanges carries batches between processes.
package changes

import (
	"context"
	"sync"
	"time"
)

// Change is one document a commit changed.
type Change struct {
	// Coll is the read model's collection as the read API names it, whatever generation
	// serves it.
	Coll     string `json:"c"`
	ID       string `json:"i"`
	Position uint64 `json:"p"` // the document's position after the commit
}

// Batch is what one commit of a projection changed, or a resync.
type Batch struct {
	Projection string   `json:"proj"`
	Changes    []Change `json:"ch,omitempty"`
	// Resync says that changes may have been missed: another generation went live, or the feed
	// lost messages on the way. A reader tells its clients to read everything again: of
	// Projection, or of every projection when Projection is empty (the feed itself lost
	// batches, and cannot tell whose).
	Resync bool `json:"resync,omitempty"`
	// CommittedAt is when the commit was made, for the latency from commit to a client.
	CommittedAt time.Time `json:"at"`
}

// Feed carries batches from the projecting process to the read processes.
type Feed interface {
	// Publish sends b to every subscriber. It never blocks on a slow subscriber. An error says
	// that b may not reach every subscriber; the feed then sees to it that they get a Resync
	// before the batches that follow.
	Publish(ctx context.Context, b Batch) error
	// Subscribe delivers the batches published from now on, in the order they were published,
	// until ctx ends, when the channel is closed. A subscriber that fell behind, or a feed that
	// lost its connection, delivers a Batch with Resync before the next ones.
	Subscribe(ctx context.Context) (<-chan Batch, error)
}

// Memory is the feed of one process: the projector and the read API in it.
type Memory struct {
	buffer int

	mu   sync.Mutex
	subs map[*memorySub]struct{}
}

type memorySub struct {
	ch     chan Batch
	missed bool // a batch did not fit: a Resync goes first once there is room
}

// NewMemory returns a feed whose subscribers may fall buffer batches behind before they miss
// some (and then get a Resync).
func NewMemory(buffer int) *Memory {
	if buffer <= 0 {
		buffer = 1024
	}
	return &Memory{buffer: buffer, subs: map[*memorySub]struct{}{}}
}

// Publish implements Feed.
func (m *Memory) Publish(_ context.Context, b Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for s := range m.subs {
		if s.missed {
			// No projection named: the batches missed may be of any.
			select {
			case s.ch <- Batch{Resync: true, CommittedAt: b.CommittedAt}:
				s.missed = false
			default:
				continue
			}
		}
		select {
		case s.ch <- b:
		default:
			s.missed = true
		}
	}
	return nil
}

// Subscribe implements Feed.
func (m *Memory) Subscribe(ctx context.Context) (<-chan Batch, error) {
	s := &memorySub{ch: make(chan Batch, m.buffer)}
	m.mu.Lock()
	m.subs[s] = struct{}{}
	m.mu.Unlock()
	go func() {
		<-ctx.Done()
		m.mu.Lock()
		delete(m.subs, s)
		close(s.ch)
		m.mu.Unlock()
	}()
	return s.ch, nil
}

var _ Feed = (*Memory)(nil)
