package sqlitelog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// stmts are the statements the append and read paths run on every call, parsed once: sent as
// text, SQLite parsed each again per call, a tenth of the server's CPU under load.
type stmts struct {
	// On wdb, run through the writer's transaction (Tx.Stmt reuses the connection's copy).
	insert, version, position, hash *sql.Stmt
	// On rdb; each read connection prepares its own copy the first time it runs one.
	stream, all *sql.Stmt
	// positions[i] reads the events at 1<<i positions, for the IN lists of readPositions.
	positions [positionLists]*sql.Stmt
}

// positionLists is the number of IN-list sizes readPositions uses: 1, 2, 4 ... 256.
const positionLists = 9

// prepareWriter prepares the writer's statements on wdb. wdb has one connection, which must be
// idle: a statement prepared on a *sql.Conn is parsed again by every Tx.Stmt.
func (s *stmts) prepareWriter(ctx context.Context, wdb *sql.DB) error {
	for _, p := range []struct {
		st    **sql.Stmt
		query string
	}{
		{&s.insert, `INSERT INTO events (position, event_id, stream, version, type, data,
			recorded_at, correlation_id, causation_id, user_id, request_id, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.version, `SELECT MAX(version) FROM streams WHERE stream = ?`},
		{&s.position, `SELECT position FROM streams WHERE stream = ? AND version = ?`},
		{&s.hash, `SELECT hash FROM events WHERE position = ?`},
	} {
		var err error
		if *p.st, err = wdb.PrepareContext(ctx, p.query); err != nil {
			return fmt.Errorf("prepare %q: %w", p.query, err)
		}
	}
	return nil
}

// prepareReaders prepares the read statements on rdb.
func (s *stmts) prepareReaders(ctx context.Context, rdb *sql.DB) error {
	var err error
	if s.stream, err = rdb.PrepareContext(ctx, `SELECT `+columns+` FROM streams s JOIN events e ON e.position = s.position
		WHERE s.stream = ? AND s.version >= ? AND s.position <= ? ORDER BY s.version LIMIT ?`); err != nil {
		return fmt.Errorf("prepare the stream read: %w", err)
	}
	if s.all, err = rdb.PrepareContext(ctx, `SELECT `+columns+` FROM events e
		WHERE e.position > ? AND e.position <= ? ORDER BY e.position LIMIT ?`); err != nil {
		return fmt.Errorf("prepare the log read: %w", err)
	}
	for i := range s.positions {
		if s.positions[i], err = rdb.PrepareContext(ctx, `SELECT `+columns+` FROM events e WHERE e.position IN (?`+
			strings.Repeat(",?", 1<<i-1)+`) ORDER BY e.position`); err != nil {
			return fmt.Errorf("prepare the read by position: %w", err)
		}
	}
	return nil
}

// close closes the statements prepared so far.
func (s *stmts) close() error {
	var errs []error
	for _, st := range append([]*sql.Stmt{s.insert, s.version, s.position, s.hash, s.stream, s.all}, s.positions[:]...) {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}
