package sqlitestore

import (
	"context"
	"fmt"
	"time"

	"github.com/edutrack/edutrack/projections/readstore"
)

// AddDeadLetter implements readstore.Store.
func (s *Store) AddDeadLetter(ctx context.Context, d readstore.DeadLetter) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record dead letter of %s at %d: %w", d.Projection, d.Position, err)
	}
	defer tx.Rollback()
	if err := s.checkFence(ctx, tx); err != nil {
		return fmt.Errorf("record dead letter of %s at %d: %w", d.Projection, d.Position, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO dead_letters (projection, position, event_id, event_type, error, at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (projection, position) DO UPDATE SET error = excluded.error, at = excluded.at`,
		d.Projection, int64(d.Position), d.EventID, d.EventType, d.Error, d.At.UnixNano())
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return fmt.Errorf("record dead letter of %s at %d: %w", d.Projection, d.Position, err)
	}
	return nil
}

// DeadLetters implements readstore.Store.
func (s *Store) DeadLetters(ctx context.Context, projection string) ([]readstore.DeadLetter, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT position, event_id, event_type, error, at FROM dead_letters
		WHERE projection = ? ORDER BY position`, projection)
	if err != nil {
		return nil, fmt.Errorf("read dead letters of %s: %w", projection, err)
	}
	defer rows.Close()
	var out []readstore.DeadLetter
	for rows.Next() {
		d := readstore.DeadLetter{Projection: projection}
		var pos, at int64
		if err := rows.Scan(&pos, &d.EventID, &d.EventType, &d.Error, &at); err != nil {
			return nil, fmt.Errorf("read dead letters of %s: %w", projection, err)
		}
		d.Position, d.At = uint64(pos), time.Unix(0, at).UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}
