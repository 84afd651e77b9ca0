package projections

import (
	"context"
	"sync"
)

// Positions tracks how far each projection has committed, and lets readers wait for a
// position: the read API's minPosition.
type Positions struct {
	mu   sync.Mutex
	pos  map[string]uint64
	wake chan struct{} // closed and replaced whenever a position advances
}

// NewPositions returns an empty tracker.
func NewPositions() *Positions {
	return &Positions{pos: make(map[string]uint64), wake: make(chan struct{})}
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

// Position returns projection's position.
func (p *Positions) Position(projection string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pos[projection]
}

// Wait blocks until every one of projections has reached pos, or ctx ends.
func (p *Positions) Wait(ctx context.Context, pos uint64, projections ...string) error {
	for {
		p.mu.Lock()
		reached := true
		for _, name := range projections {
			if p.pos[name] < pos {
				reached = false
				break
			}
		}
		wake := p.wake
		p.mu.Unlock()
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
