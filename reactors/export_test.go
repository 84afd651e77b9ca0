package reactors

import "context"

// SetCheckpoint moves the reactor's checkpoint, as a crash that lost its last commits would.
func (q *Queue) SetCheckpoint(ctx context.Context, name string, pos uint64) error {
	_, err := q.db.ExecContext(ctx, `UPDATE reactor_checkpoints SET position = ? WHERE name = ?`, pos, name)
	return err
}

// TakeLease gives lease name to owner, as another process taking over would.
func (q *Queue) TakeLease(ctx context.Context, name, owner string) error {
	_, err := q.db.ExecContext(ctx, `UPDATE reactor_leases SET owner = ?, token = token + 1 WHERE name = ?`, owner, name)
	return err
}
