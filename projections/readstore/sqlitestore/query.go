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
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"

	"github.com/edutrack/edutrack/projections/readstore"
)

// Store is the embedded read store. It is safe for concurrent use.
type Store struct {
	wdb, rdb *sql.DB

	mu     sync.Mutex
	tables map[string]bool // collections whose table exists
	stmts  sync.Map        // query text -> *sql.Stmt on rdb, so hot reads skip SQLite's parser
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
	return &Store{wdb: wdb, rdb: rdb, tables: make(map[string]bool)}, nil
}

// Close closes the file.
func (s *Store) Close() error {
	s.stmts.Range(func(_, st any) bool { st.(*sql.Stmt).Close(); return true })
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

// missingTable reports whether err says a collection's table does not exist yet.
func missingTable(err error) bool {
	return err != nil && strings.Contains(err.Error(), "no such table")
}

// Get implements readstore.Store.
func (s *Store) Get(ctx context.Context, coll, id string) (readstore.Doc, error) {
	t, err := table(coll)
	if err != nil {
		return readstore.Doc{}, err
	}
	d := readstore.Doc{ID: id}
	var pos int64
	var body string
	st, err := s.prepared(ctx, `SELECT position, body FROM `+t+` WHERE id = ?`)
	if missingTable(err) {
		return d, readstore.ErrNotFound
	}
	if err != nil {
		return d, fmt.Errorf("get %s/%s: %w", coll, id, err)
	}
	err = st.QueryRowContext(ctx, id).Scan(&pos, &body)
	if errors.Is(err, sql.ErrNoRows) || missingTable(err) {
		return d, readstore.ErrNotFound
	}
	if err != nil {
		return d, fmt.Errorf("get %s/%s: %w", coll, id, err)
	}
	d.Position, d.Body = uint64(pos), []byte(body)
	return d, nil
}

// GetMany implements readstore.Store.
func (s *Store) GetMany(ctx context.Context, coll string, ids []string) ([]readstore.Doc, error) {
	t, err := table(coll)
	if err != nil {
		return nil, err
	}
	var out []readstore.Doc
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := s.rdb.QueryContext(ctx, `SELECT id, position, body FROM `+t+` WHERE id IN (?`+
			strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
		if missingTable(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get many of %s: %w", coll, err)
		}
		docs, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("get many of %s: %w", coll, err)
		}
		out = append(out, docs...)
	}
	return out, nil
}

func scan(rows *sql.Rows) ([]readstore.Doc, error) {
	defer rows.Close()
	var out []readstore.Doc
	for rows.Next() {
		var d readstore.Doc
		var pos int64
		var body string
		if err := rows.Scan(&d.ID, &pos, &body); err != nil {
			return nil, err
		}
		d.Position, d.Body = uint64(pos), []byte(body)
		out = append(out, d)
	}
	return out, rows.Err()
}

// arg turns a query value into what SQLite's JSON functions compare it with.
func arg(v any) (any, error) {
	switch x := v.(type) {
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string, int64:
		return x, nil
	case int:
		return int64(x), nil
	case float64:
		if x == float64(int64(x)) {
			return int64(x), nil
		}
		return x, nil
	default:
		return nil, fmt.Errorf("unsupported query value %T", v)
	}
}

// Find implements readstore.Store.
func (s *Store) Find(ctx context.Context, q readstore.Query) ([]readstore.Doc, error) {
	t, err := table(q.Coll)
	if err != nil {
		return nil, err
	}
	var where []string
	var args []any
	for _, f := range q.Eq {
		if !namePattern.MatchString(f.Name) {
			return nil, fmt.Errorf("find in %s: invalid field %q", q.Coll, f.Name)
		}
		a, err := arg(f.Value)
		if err != nil {
			return nil, fmt.Errorf("find in %s: field %s: %w", q.Coll, f.Name, err)
		}
		where = append(where, field(f.Name)+" = ?")
		args = append(args, a)
	}
	for _, terms := range q.ContainsAll {
		if !namePattern.MatchString(terms.Name) {
			return nil, fmt.Errorf("find in %s: invalid field %q", q.Coll, terms.Name)
		}
		for _, v := range terms.Values {
			where = append(where, `EXISTS (SELECT 1 FROM json_each(body, '$.`+terms.Name+`') WHERE value = ?)`)
			args = append(args, v)
		}
	}
	order := make([]string, 0, len(q.Sort)+1)
	for _, o := range q.Sort {
		if !namePattern.MatchString(o.Name) {
			return nil, fmt.Errorf("find in %s: invalid sort field %q", q.Coll, o.Name)
		}
		dir := " ASC"
		if o.Desc {
			dir = " DESC"
		}
		order = append(order, field(o.Name)+dir)
	}
	order = append(order, "id ASC")
	if q.After != nil {
		cond, cargs, err := keyset(q.Sort, q.After)
		if err != nil {
			return nil, fmt.Errorf("find in %s: %w", q.Coll, err)
		}
		where = append(where, cond)
		args = append(args, cargs...)
	}
	query := `SELECT id, position, body FROM ` + t
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY " + strings.Join(order, ", ")
	if q.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if missingTable(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find in %s: %w", q.Coll, err)
	}
	docs, err := scan(rows)
	if err != nil {
		return nil, fmt.Errorf("find in %s: %w", q.Coll, err)
	}
	return docs, nil
}

// keyset is the condition "after the cursor" for the given order: past the first sort value, or
// equal to it and past the second, ..., or equal to all of them and past the id.
func keyset(sort []readstore.Order, c *readstore.Cursor) (string, []any, error) {
	if len(c.Values) != len(sort) {
		return "", nil, fmt.Errorf("cursor has %d values for %d sort fields", len(c.Values), len(sort))
	}
	var ors []string
	var args []any
	for i := 0; i <= len(sort); i++ {
		var ands []string
		for j := 0; j < i; j++ {
			a, err := arg(c.Values[j])
			if err != nil {
				return "", nil, err
			}
			ands = append(ands, field(sort[j].Name)+" = ?")
			args = append(args, a)
		}
		if i < len(sort) {
			a, err := arg(c.Values[i])
			if err != nil {
				return "", nil, err
			}
			op := " > ?"
			if sort[i].Desc {
				op = " < ?"
			}
			ands = append(ands, field(sort[i].Name)+op)
			args = append(args, a)
		} else {
			ands = append(ands, "id > ?")
			args = append(args, c.ID)
		}
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")", args, nil
}

// AddDeadLetter implements readstore.Store.
func (s *Store) AddDeadLetter(ctx context.Context, d readstore.DeadLetter) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record dead letter of %s at %d: %w", d.Projection, d.Position, err)
	}
	defer tx.Rollback()
	if err := checkFence(ctx, tx); err != nil {
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
	if err := checkFence(ctx, tx); err != nil {
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
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("drop %s: %w", projection, err)
	}
	s.mu.Lock()
	for _, c := range colls {
		delete(s.tables, c)
	}
	s.mu.Unlock()
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

// checkFence refuses a write whose context claims a lease token that is no longer the lease's.
// It runs inside the write's transaction, and the store has one writer at a time, so no owner
// change can come between the check and the write.
func checkFence(ctx context.Context, tx *sql.Tx) error {
	f, ok := readstore.FenceFrom(ctx)
	if !ok {
		return nil
	}
	var token int64
	err := tx.QueryRowContext(ctx, `SELECT token FROM leases WHERE name = ?`, f.Lease).Scan(&token)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && uint64(token) != f.Token) {
		return readstore.ErrFenced
	}
	return err
}

// AcquireLease implements readstore.Leaser. Expiry uses this machine's clock, which every process
// sharing the file shares.
func (s *Store) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (readstore.Lease, error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return readstore.Lease{}, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	defer tx.Rollback()
	now := time.Now()
	var holder string
	var token, expires int64
	err = tx.QueryRowContext(ctx, `SELECT owner, token, expires FROM leases WHERE name = ?`, name).Scan(&holder, &token, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		token = 1
	case err != nil:
		return readstore.Lease{}, fmt.Errorf("acquire lease %s: %w", name, err)
	case holder == owner:
	case now.UnixNano() < expires:
		return readstore.Lease{Name: name, Owner: holder, Token: uint64(token), Expires: time.Unix(0, expires)}, readstore.ErrLeaseHeld
	default:
		token++
	}
	until := now.Add(ttl)
	if _, err := tx.ExecContext(ctx, `INSERT INTO leases (name, owner, token, expires) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, token = excluded.token, expires = excluded.expires`,
		name, owner, token, until.UnixNano()); err != nil {
		return readstore.Lease{}, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return readstore.Lease{}, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return readstore.Lease{Name: name, Owner: owner, Token: uint64(token), Expires: until}, nil
}

// ReleaseLease implements readstore.Leaser.
func (s *Store) ReleaseLease(ctx context.Context, name, owner string) error {
	// Expire it rather than delete it, so the next owner's token is still larger.
	if _, err := s.wdb.ExecContext(ctx, `UPDATE leases SET expires = 0 WHERE name = ? AND owner = ?`, name, owner); err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}

var _ readstore.Store = (*Store)(nil)
var _ readstore.Leaser = (*Store)(nil)
