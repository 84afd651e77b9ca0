package reactors

import (
	"context"
	"time"
)

// SetCheckpoint moves the reactor's checkpoint, as a crash that lost its last commits would.
func (q *Queue) SetCheckpoint(ctx context.Context, name string, pos uint64) error {
	_, err := q.store.exec(ctx, `UPDATE reactor_checkpoints SET position = $1 WHERE name = $2`, pos, name)
	return err
}

// TakeLease gives lease name to owner, as another process taking over would.
func (q *Queue) TakeLease(ctx context.Context, name, owner string) error {
	_, err := q.store.exec(ctx, `UPDATE reactor_leases SET owner = $1, token = token + 1 WHERE name = $2`, owner, name)
	return err
}

// PoolSize is the most connections the queue's PostgreSQL pool opens.
func (q *Queue) PoolSize() int32 { return q.store.(pgxStore).pool.Config().MaxConns }

// HoldLease takes lease name for owner for ttl, as a process that then died would have.
func (q *Queue) HoldLease(ctx context.Context, name, owner string, ttl time.Duration) error {
	_, err := q.acquire(ctx, name, owner, ttl)
	return err
}
