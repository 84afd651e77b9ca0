// Package sqlitestore is the embedded read store: read-model documents as JSON in one SQLite
// file (separate from the event log), one table per collection, queried through SQLite's JSON
// functions and expression indexes.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"

	"github.com/edutrack/edutrack/projections/readstore"
)

// Store is the embedded read store. It is safe for concurrent use.
type Store struct {
	wdb, rdb *sql.DB

	mu      sync.Mutex
	tables  map[string]bool      // collections whose table exists
	inserts map[string]*sql.Stmt // collection -> its upsert on wdb, for tables that exist
	stmts   sync.Map             // query text -> *sql.Stmt on rdb, so hot reads skip SQLite's parser

	// On wdb, run through each commit's transaction: parsed once, not per commit.
	checkpoint, fence *sql.Stmt
}

// prepared returns the read statement for query, preparing it once.
func (s *Store) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.rdb.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

var namePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

const schema = `
CREATE TABLE IF NOT EXISTS checkpoints (
	projection TEXT PRIMARY KEY,
	position   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
	name    TEXT PRIMARY KEY,
	owner   TEXT    NOT NULL,
	token   INTEGER NOT NULL,
	expires INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
	projection TEXT    NOT NULL,
	position   INTEGER NOT NULL,
	event_id   TEXT    NOT NULL,
	event_type TEXT    NOT NULL,
	error      TEXT    NOT NULL,
	at         INTEGER NOT NULL,
	PRIMARY KEY (projection, position)
);
`

// Open opens (creating if needed) the store in the file at path.
func Open(path string) (*Store, error) {
	if err := private(path); err != nil {
		return nil, err
	}
	// Read models can always be rebuilt from the log, and a commit carries its checkpoint, so
	// synchronous=NORMAL is enough: a power cut can only take back whole commits.
	wdb, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"+
		"&_pragma=busy_timeout(10000)&_pragma=cache_size(-65536)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open read store %s: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	if _, err := wdb.Exec(schema); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("create read store schema in %s: %w", path, err)
	}
	rdb, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)&_pragma=cache_size(-32768)")
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open read store %s for reading: %w", path, err)
	}
	rdb.SetMaxOpenConns(8)
	rdb.SetMaxIdleConns(8)
	s := &Store{wdb: wdb, rdb: rdb, tables: make(map[string]bool), inserts: make(map[string]*sql.Stmt)}
	if s.checkpoint, err = wdb.Prepare(`INSERT INTO checkpoints (projection, position) VALUES (?, ?)
		ON CONFLICT (projection) DO UPDATE SET position = excluded.position`); err == nil {
		s.fence, err = wdb.Prepare(`SELECT token FROM leases WHERE name = ?`)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open read store %s: %w", path, err)
	}
	return s, nil
}

// Close closes the file.
func (s *Store) Close() error {
	s.stmts.Range(func(_, st any) bool { st.(*sql.Stmt).Close(); return true })
	s.mu.Lock()
	for _, st := range s.inserts {
		st.Close()
	}
	s.inserts = map[string]*sql.Stmt{}
	s.mu.Unlock()
	for _, st := range []*sql.Stmt{s.checkpoint, s.fence} {
		if st != nil {
			st.Close()
		}
	}
	return errors.Join(s.wdb.Close(), s.rdb.Close())
}

func table(coll string) (string, error) {
	if !namePattern.MatchString(coll) {
		return "", fmt.Errorf("invalid collection name %q", coll)
	}
	return `"docs_` + coll + `"`, nil
}

// ensureTable creates coll's table if needed, through q. When q is a transaction, created
// collects the collection, to be marked known only once the transaction commits.
func (s *Store) ensureTable(ctx context.Context, q execer, coll string, created *[]string) (string, error) {
	t, err := table(coll)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	known := s.tables[coll]
	s.mu.Unlock()
	if known {
		return t, nil
	}
	if _, err := q.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+t+` (
		id TEXT PRIMARY KEY, position INTEGER NOT NULL, body TEXT NOT NULL) WITHOUT ROWID`); err != nil {
		return "", fmt.Errorf("create collection %s: %w", coll, err)
	}
	if created != nil {
		*created = append(*created, coll)
		return t, nil
	}
	s.mu.Lock()
	s.tables[coll] = true
	s.mu.Unlock()
	return t, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// EnsureIndexes implements readstore.Store.
func (s *Store) EnsureIndexes(ctx context.Context, indexes []readstore.Index) error {
	for _, ix := range indexes {
		t, err := s.ensureTable(ctx, s.wdb, ix.Coll, nil)
		if err != nil {
			return err
		}
		exprs := make([]string, len(ix.Fields))
		for i, f := range ix.Fields {
			if !namePattern.MatchString(f) {
				return fmt.Errorf("index %s: invalid field name %q", ix.Coll, f)
			}
			exprs[i] = field(f)
		}
		name := `"ix_` + ix.Coll + "_" + strings.Join(ix.Fields, "_") + `"`
		if _, err := s.wdb.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS `+name+` ON `+t+` (`+strings.Join(exprs, ", ")+`)`); err != nil {
			return fmt.Errorf("create index %s: %w", name, err)
		}
	}
	return nil
}

func field(name string) string { return `json_extract(body, '$.` + name + `')` }

// Drop implements readstore.Store.
func (s *Store) Drop(ctx context.Context, projection string, colls []string) error {
	tables := make([]string, len(colls))
	for i, c := range colls {
		t, err := table(c)
		if err != nil {
			return err
		}
		tables[i] = t
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("drop %s: %w", projection, err)
	}
	defer tx.Rollback()
	if err := s.checkFence(ctx, tx); err != nil {
		return fmt.Errorf("drop %s: %w", projection, err)
	}
	for _, t := range tables {
		if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS `+t); err != nil {
			return fmt.Errorf("drop %s: %w", projection, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM checkpoints WHERE projection = ?`, projection); err != nil {
		return fmt.Errorf("drop %s: checkpoint: %w", projection, err)
	}
	// Forgotten while this transaction holds the one write connection, so no commit starts in
	// between believing the tables still exist. Forgetting a table that stays (the commit
	// fails) only costs creating it if not exists and preparing its upsert again.
	s.mu.Lock()
	for _, c := range colls {
		delete(s.tables, c)
		if st := s.inserts[c]; st != nil {
			st.Close()
			delete(s.inserts, c)
		}
	}
	s.mu.Unlock()
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("drop %s: %w", projection, err)
	}
	// Statements on a dropped table would only fail from now on.
	s.stmts.Range(func(q, st any) bool {
		for _, t := range tables {
			if strings.Contains(q.(string), t) {
				s.stmts.Delete(q)
				st.(*sql.Stmt).Close()
				break
			}
		}
		return true
	})
	return nil
}

var _ readstore.Store = (*Store)(nil)
