package ratelimit

import (
	"context"
	"sync"
	"time"
)

// sweepEvery is how often Memory forgets the budgets that have filled up again, which keeps
// its map as small as the set of recent clients.
const sweepEvery = time.Minute

// Memory keeps budgets in this process. It is safe for concurrent use.
type Memory struct {
	now func() time.Time

	mu        sync.Mutex
	tat       map[string]time.Time // when each key's budget is full again
	lastSweep time.Time
}

// NewMemory returns an empty in-process limiter.
func NewMemory() *Memory {
	return &Memory{now: time.Now, tat: map[string]time.Time{}}
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, key string, l Limit) Decision {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.lastSweep) > sweepEvery {
		for k, t := range m.tat {
			if !t.After(now) {
				delete(m.tat, k) // a full budget is the same as none spent
			}
		}
		m.lastSweep = now
	}
	tat := m.tat[key]
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(l.interval())
	if wait := next.Sub(now) - l.tolerance(); wait > 0 {
		return Decision{RetryAfter: wait}
	}
	m.tat[key] = next
	return Decision{Allowed: true}
}
