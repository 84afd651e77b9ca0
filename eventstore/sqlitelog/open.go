package sqlitelog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

const schema = `
CREATE TABLE IF NOT EXISTS events (
	position       INTEGER PRIMARY KEY,
	event_id       BLOB    NOT NULL,
	stream         TEXT    NOT NULL,
	version        INTEGER NOT NULL,
	type           TEXT    NOT NULL,
	data           BLOB    NOT NULL,
	recorded_at    INTEGER NOT NULL,
	correlation_id TEXT    NOT NULL DEFAULT '',
	causation_id   TEXT    NOT NULL DEFAULT '',
	user_id        TEXT    NOT NULL DEFAULT '',
	request_id     TEXT    NOT NULL DEFAULT '',
	hash           BLOB
);
CREATE TABLE IF NOT EXISTS streams (
	stream   TEXT    NOT NULL,
	version  INTEGER NOT NULL,
	position INTEGER NOT NULL,
	PRIMARY KEY (stream, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_state (
	key   TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS anchors (
	seq        INTEGER PRIMARY KEY,
	kind       TEXT    NOT NULL,
	at         INTEGER NOT NULL,
	head       INTEGER NOT NULL,
	log_hash   BLOB    NOT NULL,
	heads      BLOB    NOT NULL,
	unresolved TEXT    NOT NULL DEFAULT '',
	reason     TEXT    NOT NULL DEFAULT '',
	key_id     BLOB    NOT NULL,
	prev_mac   BLOB    NOT NULL,
	mac        BLOB    NOT NULL
);
PRAGMA user_version = 1;
`

// Open opens (creating if needed) the log in the file at path. Only one process may have a log
// open at a time; a second Open of the same file fails instead of corrupting its positions.
func Open(path string, opts Options) (*Log, error) {
	if opts.MaxBatchEvents <= 0 {
		opts.MaxBatchEvents = 4096
	}
	if opts.IndexBatch <= 0 {
		opts.IndexBatch = 4096
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = 4
	}
	if k := opts.Anchors.Key; k != nil && len(k) < MinAnchorKeyLen {
		return nil, fmt.Errorf("open event log %s: the anchor key has %d bytes; want at least %d", path, len(k), MinAnchorKeyLen)
	}
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, err
	}
	if err := private(path); err != nil {
		lock.Close()
		return nil, err
	}
	l := &Log{
		lock:     lock,
		opts:     opts,
		reqs:     make(chan *appendReq, 1024),
		closing:  make(chan struct{}),
		stopped:  make(chan struct{}),
		durable:  make(chan *commitment),
		ready:    make(chan struct{}),
		walPath:  path + "-wal",
		notify:   make(chan struct{}),
		versions: make(map[string]uint64),
		hashes:   make(map[string][]byte),
		heads:    make(map[string]uint64),
		tail:     make(map[string][]entry),
	}
	if err := l.open(path); err != nil {
		l.closeDBs()
		return nil, err
	}
	if err := l.checkAnchors(opts.Anchors); err != nil {
		l.closeDBs()
		return nil, fmt.Errorf("event log %s: %w", path, err)
	}
	go l.run()
	go l.sync()
	return l, nil
}

func (l *Log) open(path string) error {
	var err error
	// synchronous=NORMAL: commits do not fsync; the syncer does, before anyone learns of them.
	l.wdb, err = sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"+
		"&_pragma=busy_timeout(5000)&_pragma=cache_size(-65536)&_txlock=immediate")
	if err != nil {
		return fmt.Errorf("open event log %s: %w", path, err)
	}
	l.wdb.SetMaxOpenConns(1)
	l.wdb.SetConnMaxIdleTime(0)
	if l.wconn, err = l.wdb.Conn(context.Background()); err != nil {
		return fmt.Errorf("open event log %s: %w", path, err)
	}
	if _, err := l.wconn.ExecContext(context.Background(), schema); err != nil {
		return fmt.Errorf("create event log schema in %s: %w", path, err)
	}
	if err := addHashes(context.Background(), l.wconn); err != nil {
		return fmt.Errorf("event log %s: %w", path, err)
	}
	// Hand the connection back so the writer's statements are prepared on the DB, which Tx.Stmt
	// reuses, then take it again for good: wdb has no other.
	if err := l.wconn.Close(); err != nil {
		return fmt.Errorf("open event log %s: %w", path, err)
	}
	l.wconn = nil
	if err := l.stmts.prepareWriter(context.Background(), l.wdb); err != nil {
		return fmt.Errorf("open event log %s: %w", path, err)
	}
	if l.wconn, err = l.wdb.Conn(context.Background()); err != nil {
		return fmt.Errorf("open event log %s: %w", path, err)
	}
	var last, indexed sql.NullInt64
	if err := l.wconn.QueryRowContext(context.Background(), `SELECT MAX(position) FROM events`).Scan(&last); err != nil {
		return fmt.Errorf("read event log head: %w", err)
	}
	if err := l.wconn.QueryRowContext(context.Background(), `SELECT value FROM log_state WHERE key = 'indexed'`).Scan(&indexed); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read stream index state: %w", err)
	}
	l.nextPos = uint64(last.Int64) + 1
	l.head.Store(uint64(last.Int64))
	l.indexed = uint64(indexed.Int64)
	if err := l.catchUpIndex(); err != nil {
		return err
	}
	l.indexing = l.indexed

	l.rdb, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		return fmt.Errorf("open event log %s for reading: %w", path, err)
	}
	l.rdb.SetMaxOpenConns(l.opts.ReadConns)
	l.rdb.SetMaxIdleConns(l.opts.ReadConns)
	l.rdb.SetConnMaxIdleTime(0)
	if err := l.stmts.prepareReaders(context.Background(), l.rdb); err != nil {
		return fmt.Errorf("open event log %s: %w", path, err)
	}
	return nil
}

// catchUpIndex writes the index entries of the events committed after the index last caught
// up, which is where a crash or a close leaves them.
func (l *Log) catchUpIndex() error {
	ctx := context.Background()
	rows, err := l.wconn.QueryContext(ctx, `SELECT stream, version, position FROM events WHERE position > ? ORDER BY position`, int64(l.indexed))
	if err != nil {
		return fmt.Errorf("read unindexed events: %w", err)
	}
	var todo []entry
	for rows.Next() {
		var e entry
		var v, p int64
		if err := rows.Scan(&e.stream, &v, &p); err != nil {
			rows.Close()
			return fmt.Errorf("read unindexed events: %w", err)
		}
		e.version, e.position = uint64(v), uint64(p)
		todo = append(todo, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read unindexed events: %w", err)
	}
	if len(todo) == 0 {
		return nil
	}
	tx, err := l.wconn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := writeIndex(tx, todo); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("catch up the stream index: %w", err)
	}
	if err := l.syncWAL(); err != nil {
		return err
	}
	l.indexed = todo[len(todo)-1].position
	return nil
}

// writeIndex adds entries to the streams table, sorted so that each B-tree page is visited once,
// and records how far the index reaches.
func writeIndex(tx *sql.Tx, entries []entry) error {
	sorted := slices.Clone(entries)
	slices.SortFunc(sorted, func(a, b entry) int {
		if c := strings.Compare(a.stream, b.stream); c != 0 {
			return c
		}
		return int(a.version) - int(b.version)
	})
	stmt, err := tx.Prepare(`INSERT INTO streams (stream, version, position) VALUES (?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("write stream index: %w", err)
	}
	defer stmt.Close()
	for _, e := range sorted {
		if _, err := stmt.Exec(e.stream, int64(e.version), int64(e.position)); err != nil {
			return fmt.Errorf("write stream index: %w", err)
		}
	}
	_, err = tx.Exec(`INSERT INTO log_state (key, value) VALUES ('indexed', ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, int64(entries[len(entries)-1].position))
	if err != nil {
		return fmt.Errorf("write stream index: %w", err)
	}
	return nil
}

func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open event log lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("event log is in use by another process (lock %s): %w", path, err)
	}
	return f, nil
}

func (l *Log) closeDBs() {
	l.stmts.close()
	if l.wconn != nil {
		l.wconn.Close()
	}
	if l.wal != nil {
		l.wal.Close()
	}
	if l.wdb != nil {
		l.wdb.Close()
	}
	if l.rdb != nil {
		l.rdb.Close()
	}
	if l.lock != nil {
		l.lock.Close() // releases the flock
	}
}

// Close finishes the appends already queued, then closes the file. Appends after Close fail
// with eventstore.ErrClosed.
func (l *Log) Close() error {
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		return nil
	}
	l.closed = true
	l.closeMu.Unlock()
	close(l.closing)
	<-l.stopped
	// A clean close leaves the stream index complete, so it also vouches for the newest events
	// (Verify notices one removed from the end).
	err := l.catchUpIndex()
	// The shutdown anchor says nothing was appended after it by EduTrack. After a failed sync
	// nothing since the last good one can be vouched for: the next start treats it as a crash.
	if st := l.anchor; err == nil && st != nil && l.failed.Load() == nil {
		err = l.writeAnchor(context.Background(), st.next(AnchorShutdown, l.nextPos-1, st.logHash, l.touchedHeads(&batch{}), ""))
	}
	l.closeDBs()
	return err
}

// checkAnchors anchors the log when there is a key, after checking the last anchor and what
// follows it. Without a key it only finds whether the log has anchors it then cannot check.
func (l *Log) checkAnchors(o AnchorOptions) error {
	ctx := context.Background()
	if o.Key == nil {
		anchored, err := hasAnchors(ctx, l.wconn)
		if anchored {
			l.integrity = integrity(nil, "", true)
		}
		return err
	}
	l.anchor = newAnchorState(o)
	return l.startAnchoring(ctx)
}
