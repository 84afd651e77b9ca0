package reactors

import "context"

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
