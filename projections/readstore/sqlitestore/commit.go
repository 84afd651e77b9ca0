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
	prepared := s.upserts(ctx, writes)
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("commit %s: %w", projection, err)
	}
	defer tx.Rollback() // also closes the transaction's statements
	if err := s.checkFence(ctx, tx); err != nil {
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
			if p := prepared[w.Coll]; p != nil {
				st = tx.StmtContext(ctx, p)
			} else if st, err = tx.PrepareContext(ctx, upsert(t)); err != nil {
				return fmt.Errorf("commit %s: %w", projection, err)
			}
			stmts[w.Coll] = st
		}
		if _, err := st.ExecContext(ctx, w.Doc.ID, int64(w.Doc.Position), string(w.Doc.Body)); err != nil {
			return fmt.Errorf("commit %s: write %s/%s: %w", projection, w.Coll, w.Doc.ID, err)
		}
	}
	if _, err := tx.StmtContext(ctx, s.checkpoint).ExecContext(ctx, projection, int64(checkpoint)); err != nil {
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

func upsert(table string) string {
	return `INSERT INTO ` + table + ` (id, position, body) VALUES (?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET position = excluded.position, body = excluded.body
		WHERE excluded.position > position`
}

// upserts returns the prepared upsert of each collection of writes whose table exists, preparing
// those not yet prepared. It runs before the commit's transaction, which holds wdb's one
// connection that preparing needs. A collection left out (its table is new, or went between the
// check and the prepare) is prepared inside the transaction, after its table is created, where
// any error is reported. A statement over a table dropped and created again since still works:
// SQLite prepares it again when it finds the schema changed.
func (s *Store) upserts(ctx context.Context, writes []readstore.Write) map[string]*sql.Stmt {
	out := make(map[string]*sql.Stmt, 2)
	for _, w := range writes {
		if _, done := out[w.Coll]; done {
			continue
		}
		s.mu.Lock()
		st, exists := s.inserts[w.Coll], s.tables[w.Coll]
		s.mu.Unlock()
		if st == nil && exists {
			t, err := table(w.Coll)
			if err == nil {
				st, err = s.wdb.PrepareContext(ctx, upsert(t))
			}
			if err != nil {
				st = nil
			} else {
				s.mu.Lock()
				if prev := s.inserts[w.Coll]; prev != nil {
					st.Close()
					st = prev
				} else {
					s.inserts[w.Coll] = st
				}
				s.mu.Unlock()
			}
		}
		out[w.Coll] = st
	}
	return out
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
