package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/edutrack/edutrack/projections/readstore"
)

// Commit implements readstore.Store: the documents and the checkpoint in one transaction.
func (s *Store) Commit(ctx context.Context, projection string, checkpoint uint64, writes []readstore.Write) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("commit %s: %w", projection, err)
	}
	defer tx.Rollback()
	if err := checkFence(ctx, tx); err != nil {
		return fmt.Errorf("commit %s: %w", projection, err)
	}
	var created []string
	stmts := map[string]*sql.Stmt{}
	for _, w := range writes {
		st, ok := stmts[w.Coll]
		if !ok {
			t, err := s.ensureTable(ctx, tx, w.Coll, &created)
			if err != nil {
				return err
			}
			if st, err = tx.PrepareContext(ctx, `INSERT INTO `+t+` (id, position, body) VALUES (?, ?, ?)
				ON CONFLICT (id) DO UPDATE SET position = excluded.position, body = excluded.body
				WHERE excluded.position > position`); err != nil {
				return fmt.Errorf("commit %s: %w", projection, err)
			}
			defer st.Close()
			stmts[w.Coll] = st
		}
		if _, err := st.ExecContext(ctx, w.Doc.ID, int64(w.Doc.Position), string(w.Doc.Body)); err != nil {
			return fmt.Errorf("commit %s: write %s/%s: %w", projection, w.Coll, w.Doc.ID, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (projection, position) VALUES (?, ?)
		ON CONFLICT (projection) DO UPDATE SET position = excluded.position`, projection, int64(checkpoint)); err != nil {
		return fmt.Errorf("commit %s: checkpoint: %w", projection, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit %s: %w", projection, err)
	}
	s.mu.Lock()
	for _, c := range created {
		s.tables[c] = true
	}
	s.mu.Unlock()
	return nil
}

// Checkpoint implements readstore.Store.
func (s *Store) Checkpoint(ctx context.Context, projection string) (uint64, error) {
	var p int64
	err := s.rdb.QueryRowContext(ctx, `SELECT position FROM checkpoints WHERE projection = ?`, projection).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read checkpoint of %s: %w", projection, err)
	}
	return uint64(p), nil
}
