package projections

import (
	"context"
	"sync"
)

// Positions tracks how far each projection has committed, and lets readers wait for a
// position: the read API's minPosition. It also holds each projection's cache fence, which tells
// readers which cache entries they may trust.
type Positions struct {
	mu     sync.RWMutex
	pos    map[string]uint64
	fences map[string]uint64 // a projection is present once its fence is known
	wake   chan struct{}     // closed and replaced whenever a position advances
}

// NewPositions returns an empty tracker.
func NewPositions() *Positions {
	return &Positions{pos: make(map[string]uint64), fences: make(map[string]uint64), wake: make(chan struct{})}
}

// Advance records that projection has committed up to pos.
func (p *Positions) Advance(projection string, pos uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pos <= p.pos[projection] {
		if _, ok := p.pos[projection]; ok {
			return
		}
	}
	p.pos[projection] = pos
	close(p.wake)
	p.wake = make(chan struct{})
}

// Set records projection's position as pos, even below the last one: a new generation went
// live after the log went back.
func (p *Positions) Set(projection string, pos uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pos[projection] = pos
	close(p.wake)
	p.wake = make(chan struct{})
}

// Position returns projection's position.
func (p *Positions) Position(projection string) uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.pos[projection]
}

// CacheFence returns the position from which projection's cache entries may be trusted: an
// entry known current only as of an earlier position (cache.Entry.AsOf) may be one that a failed
// cache write left behind, older than the read store. known is false until this process has
// read the fence from the read store, and until then no entry may be trusted.
//
// Whoever advances a projection raises its fence first, so a reader that has seen a position
// (a minPosition wait included) also sees every fence raised up to it.
func (p *Positions) CacheFence(projection string) (fence uint64, known bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	fence, known = p.fences[projection]
	return fence, known
}

// RaiseCacheFence records that projection's cache entries known current only as of a position
// before pos may be stale: a cache write failed in the batch committed at pos, or a generation
// went live at pos. A fence never goes down.
func (p *Positions) RaiseCacheFence(projection string, pos uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, ok := p.fences[projection]; !ok || pos > f {
		p.fences[projection] = pos
	}
}

// Wait blocks until every one of projections has reached pos, or ctx ends.
func (p *Positions) Wait(ctx context.Context, pos uint64, projections ...string) error {
	for {
		p.mu.RLock()
		reached := true
		for _, name := range projections {
			if p.pos[name] < pos {
				reached = false
				break
			}
		}
		wake := p.wake
		p.mu.RUnlock()
		if reached {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
