// Package sqlitelog is the embedded event log: one SQLite file in WAL mode, written by a single
// goroutine that commits concurrent appends together (group commit) and assigns global
// positions, so a reader never sees a later position before an earlier one is committed.
//
// Durability is pipelined: the writer commits with synchronous=NORMAL and goes on to the next
// batch at once, while a second goroutine fsyncs the WAL file and only then answers the callers
// and makes their events visible to readers. One fsync covers every commit made before it, so the
// writer never waits for the disk, and no caller or reader ever sees an event that a power cut
// could take back.
//
// The events table only grows at its end. The index of streams (stream, version -> position) is
// written behind it in large sorted batches, because indexing each small group commit dirtied one
// B-tree page per stream and cost more than the events themselves. The part of the index not yet
// written (the tail) lives in memory and is rebuilt from the events table on open.
package sqlitelog

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"

	"github.com/edutrack/edutrack/eventstore"
)

// Options tune the log; the zero value is a sensible default.
type Options struct {
	// MaxBatchEvents caps the events one group commit writes (default 4096).
	MaxBatchEvents int
	// IndexBatch is how many events the stream index trails by before a commit writes them
	// into it (default 4096). Larger batches write fewer index pages per event.
	IndexBatch int
	// ReadConns is the size of the read connection pool (default 4).
	ReadConns int
}

// Log is the embedded event store. It is safe for concurrent use.
type Log struct {
	wdb, rdb *sql.DB
	wconn    *sql.Conn // the one write connection, held for the life of the log
	lock     *os.File
	insert   *sql.Stmt
	walPath  string
	wal      *os.File // opened by the syncer
	opts     Options

	reqs    chan *appendReq
	closeMu sync.RWMutex // held shared by Append while it enqueues, so Close can drain the queue
	closed  bool
	closing chan struct{}
	stopped chan struct{}
	durable chan *commitment // from the writer to the syncer, in commit order
	ready   chan struct{}    // the syncer's token: it is free to sync the next commit
	failed  atomic.Pointer[error]

	// Owned by the writer goroutine: the next position, and the stream versions it committed,
	// which run ahead of heads until the syncer publishes them.
	nextPos  uint64
	versions map[string]uint64
	hashes   map[string][]byte // the last event's hash per stream, for the chain
	indexing uint64            // the position up to which committed transactions fill the index

	head     atomic.Uint64
	commits  atomic.Uint64
	appends  atomic.Uint64
	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced after each commit

	mu sync.RWMutex
	// heads holds stream versions known to be current. Only this process writes the file (the
	// lock file guarantees it), so a version learned from a commit or a complete read stays true
	// until this process's writer raises it; ReadStream uses it to answer "nothing new" at once.
	heads map[string]uint64
	// indexed is the position up to which the streams table is complete; pending holds the
	// committed events after it, in position order, and tail the same entries by stream.
	indexed uint64
	pending []entry
	tail    map[string][]entry
}

type entry struct {
	stream   string
	version  uint64
	position uint64
}

type appendReq struct {
	ctx      context.Context
	stream   string
	expected eventstore.ExpectedVersion
	events   []eventstore.EventData
	digests  [][sha256.Size]byte // each event's content digest, computed by the caller
	done     chan appendResp
}

type appendResp struct {
	res eventstore.AppendResult
	err error
}

// commitment is a committed transaction waiting for its fsync.
type commitment struct {
	w    written
	reqs []*appendReq
}

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
PRAGMA user_version = 1;
`

const columns = `e.event_id, e.stream, e.version, e.position, e.recorded_at, e.type, e.data,
	e.correlation_id, e.causation_id, e.user_id, e.request_id`

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
	lock, err := lockFile(path + ".lock")
	if err != nil {
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
	l.insert, err = l.wconn.PrepareContext(context.Background(), `INSERT INTO events (position, event_id, stream, version, type, data,
		recorded_at, correlation_id, causation_id, user_id, request_id, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("prepare append: %w", err)
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
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
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
	if l.insert != nil {
		l.insert.Close()
	}
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
	l.closeDBs()
	return err
}

// Append implements eventstore.Store. Once queued, an append is committed or refused by the
// writer even if ctx ends, so the answer is always the truth about the log.
func (l *Log) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events []eventstore.EventData) (eventstore.AppendResult, error) {
	if len(events) == 0 {
		return eventstore.AppendResult{}, errors.New("append to " + stream + ": no events")
	}
	if stream == "" {
		return eventstore.AppendResult{}, errors.New("append: empty stream id")
	}
	req := &appendReq{ctx: ctx, stream: stream, expected: expected, events: events, done: make(chan appendResp, 1),
		digests: make([][sha256.Size]byte, len(events))}
	for i, e := range events {
		req.digests[i] = contentDigest(e.ID[:], stream, e.Type, e.Data, e.Metadata)
	}
	l.closeMu.RLock()
	if l.closed {
		l.closeMu.RUnlock()
		return eventstore.AppendResult{}, eventstore.ErrClosed
	}
	if err := l.failed.Load(); err != nil {
		l.closeMu.RUnlock()
		return eventstore.AppendResult{}, *err
	}
	l.reqs <- req
	l.closeMu.RUnlock()
	resp := <-req.done
	return resp.res, resp.err
}

// run is the writer. It keeps one transaction open and adds each append to it as it arrives;
// the transaction commits when the syncer is free to make it durable, so the writer's work
// overlaps the previous fsync and a commit carries everything that arrived meanwhile.
func (l *Log) run() {
	defer close(l.durable)
	var b *batch
	for {
		var ready chan struct{}
		if b != nil {
			ready = l.ready
		}
		select {
		case r := <-l.reqs:
			b = l.add(b, r)
			if b != nil && b.events >= l.opts.MaxBatchEvents {
				<-l.ready
				l.finish(b)
				b = nil
			}
		case <-ready:
			l.finish(b)
			b = nil
		case <-l.closing:
			// No Append can enqueue any more: commit what is left, then stop.
			for {
				select {
				case r := <-l.reqs:
					b = l.add(b, r)
					continue
				default:
				}
				break
			}
			if b != nil {
				<-l.ready
				l.finish(b)
			}
			return
		}
	}
}

// batch is the writer's open transaction.
type batch struct {
	tx       *sql.Tx
	insert   *sql.Stmt
	now      int64
	pos      uint64 // the next position
	versions map[string]uint64
	hashes   map[string][]byte
	reqs     []*appendReq
	w        written
	events   int
}

// reqError fails one append without failing the others in its transaction.
type reqError struct {
	req *appendReq
	err error
}

func (e *reqError) Error() string { return e.err.Error() }
func (e *reqError) Unwrap() error { return e.err }

// add puts r into the open transaction, beginning one if b is nil. An append that cannot go in
// is answered at once; the transaction is then rebuilt without it.
func (l *Log) add(b *batch, r *appendReq) *batch {
	if err := r.ctx.Err(); err != nil {
		r.done <- appendResp{err: err}
		return b
	}
	if b == nil {
		tx, err := l.wconn.BeginTx(context.Background(), nil)
		if err != nil {
			r.done <- appendResp{err: fmt.Errorf("begin event log transaction: %w", err)}
			return nil
		}
		b = &batch{tx: tx, insert: tx.Stmt(l.insert), now: time.Now().UnixNano(), pos: l.nextPos,
			versions: make(map[string]uint64), hashes: make(map[string][]byte)}
	}
	res, err := l.write(b, r)
	if err == nil {
		b.reqs = append(b.reqs, r)
		b.w.results = append(b.w.results, res)
		return b
	}
	var re *reqError
	if !errors.As(err, &re) {
		err = fmt.Errorf("append to event log: %w", err)
	}
	r.done <- appendResp{err: err}
	b.tx.Rollback()
	var rebuilt *batch
	for _, p := range b.reqs {
		rebuilt = l.add(rebuilt, p)
	}
	return rebuilt
}

// write adds one append's events to the transaction, or answers why it cannot append.
func (l *Log) write(b *batch, r *appendReq) (appendResp, error) {
	cur, ok := b.versions[r.stream]
	if !ok {
		var err error
		if cur, err = l.streamVersion(b.tx, r.stream); err != nil {
			return appendResp{}, err
		}
	}
	if !r.expected.Allows(cur) || r.expected.IsAny() {
		// Either a conflict or a retry of an append that already landed; only the ids tell.
		from := uint64(1)
		if !r.expected.IsAny() {
			from = r.expected.Version() + 1
		}
		res, found, err := l.appended(r.stream, from, r.events)
		switch {
		case err != nil:
			return appendResp{}, &reqError{r, err}
		case found:
			return appendResp{res: res}, nil
		case !r.expected.Allows(cur):
			return appendResp{err: fmt.Errorf("append to %s at %s, stream is at version %d: %w",
				r.stream, r.expected, cur, eventstore.ErrConcurrency)}, nil
		}
	}
	prev, err := l.streamHash(b, r.stream, cur)
	if err != nil {
		return appendResp{}, &reqError{r, err}
	}
	start := len(b.w.entries)
	for i, e := range r.events {
		m := e.Metadata
		v := cur + uint64(len(b.w.entries)-start) + 1
		pos := b.pos + uint64(len(b.w.entries)-start)
		prev = chainHash(prev, r.digests[i], pos, v, b.now)
		if _, err := b.insert.Exec(int64(pos), e.ID[:], r.stream, int64(v), e.Type, e.Data, b.now,
			m.CorrelationID, m.CausationID, m.UserID, m.RequestID, prev); err != nil {
			return appendResp{}, &reqError{r, fmt.Errorf("append to %s: %w", r.stream, err)}
		}
		b.w.entries = append(b.w.entries, entry{stream: r.stream, version: v, position: pos})
	}
	b.hashes[r.stream] = prev
	n := uint64(len(r.events))
	b.pos += n
	b.events += len(r.events)
	b.versions[r.stream] = cur + n
	return appendResp{res: eventstore.AppendResult{Version: cur + n, Position: b.pos - 1}}, nil
}

// finish commits the open transaction and hands it to the syncer, which holds the answers until
// the commit is durable. The caller holds the syncer's ready token.
func (l *Log) finish(b *batch) {
	err := l.flushIndex(b)
	if err == nil {
		err = b.tx.Commit()
	}
	if err != nil {
		b.tx.Rollback()
		for i := range b.w.results {
			b.w.results[i] = appendResp{err: fmt.Errorf("commit to event log: %w", err)}
		}
		b.w.entries, b.w.indexedTo = nil, 0
		l.durable <- &commitment{w: b.w, reqs: b.reqs}
		return
	}
	l.nextPos = b.pos
	l.indexing = max(l.indexing, b.w.indexedTo)
	for s, v := range b.versions {
		l.versions[s] = v
	}
	for s, h := range b.hashes {
		l.hashes[s] = h
	}
	if len(b.w.entries) > 0 {
		b.w.last = b.pos - 1
	}
	l.durable <- &commitment{w: b.w, reqs: b.reqs}
}

// flushIndex writes the pending index entries into the transaction once there are enough.
func (l *Log) flushIndex(b *batch) error {
	l.mu.RLock()
	pending := l.pending[:len(l.pending):len(l.pending)] // its elements never change in place
	l.mu.RUnlock()
	// Entries an earlier, not yet published, transaction indexed are still pending: skip them.
	todo := pending[sort.Search(len(pending), func(i int) bool { return pending[i].position > l.indexing }):]
	if len(todo) < l.opts.IndexBatch {
		return nil
	}
	if err := writeIndex(b.tx, todo); err != nil {
		return err
	}
	b.w.indexedTo = todo[len(todo)-1].position
	return nil
}

// written is what one transaction did: each append's answer, the new events' index entries, and
// how far it brought the streams table.
type written struct {
	results   []appendResp
	entries   []entry
	indexedTo uint64 // the position the index reaches after this transaction, 0 if unchanged
	last      uint64 // position of the last event written, 0 if none
}

// streamHash returns the hash of the event at version of stream (the stream's last), which
// the next event chains to.
func (l *Log) streamHash(b *batch, stream string, version uint64) ([]byte, error) {
	if version == 0 {
		return nil, nil
	}
	if h, ok := b.hashes[stream]; ok {
		return h, nil
	}
	if h, ok := l.hashes[stream]; ok {
		return h, nil
	}
	// Not written since open: every event of the stream is published, in the index or its tail.
	var pos uint64
	l.mu.RLock()
	for _, e := range l.tail[stream] {
		if e.version == version {
			pos = e.position
		}
	}
	l.mu.RUnlock()
	if pos == 0 {
		var p int64
		if err := b.tx.QueryRow(`SELECT position FROM streams WHERE stream = ? AND version = ?`, stream, int64(version)).Scan(&p); err != nil {
			return nil, fmt.Errorf("find the last event of %s: %w", stream, err)
		}
		pos = uint64(p)
	}
	var h []byte
	if err := b.tx.QueryRow(`SELECT hash FROM events WHERE position = ?`, int64(pos)).Scan(&h); err != nil {
		return nil, fmt.Errorf("read the hash of the last event of %s: %w", stream, err)
	}
	return h, nil
}

// streamVersion returns the current version of stream as the writer sees it.
func (l *Log) streamVersion(tx *sql.Tx, stream string) (uint64, error) {
	if v, ok := l.versions[stream]; ok {
		return v, nil
	}
	l.mu.RLock()
	v, ok := l.heads[stream]
	l.mu.RUnlock()
	if ok {
		return v, nil
	}
	// Not written since open, and not in the tail (the tail's streams are all in heads): the
	// index has all of it.
	var last sql.NullInt64
	if err := tx.QueryRow(`SELECT MAX(version) FROM streams WHERE stream = ?`, stream).Scan(&last); err != nil {
		return 0, fmt.Errorf("read version of %s: %w", stream, err)
	}
	return uint64(last.Int64), nil
}

// appended looks for an earlier append of exactly these events among the events of stream from
// version from on. found is false when none of the ids are there; some but not all is
// ErrDuplicateEvent.
func (l *Log) appended(stream string, from uint64, events []eventstore.EventData) (eventstore.AppendResult, bool, error) {
	stored, err := l.ReadStream(context.Background(), stream, from, 0)
	if err != nil {
		return eventstore.AppendResult{}, false, err
	}
	last, found, err := eventstore.FindAppend(stored, events)
	if err != nil {
		return eventstore.AppendResult{}, false, fmt.Errorf("append to %s: %w", stream, err)
	}
	if !found {
		return eventstore.AppendResult{}, false, nil
	}
	return eventstore.AppendResult{Version: last.Version, Position: last.Position}, true, nil
}

// publish makes a commit visible: stream heads and the index tail, the log head, then a wake-up
// for subscribers.
func (l *Log) publish(w written) {
	l.mu.Lock()
	if w.indexedTo > 0 {
		n := sort.Search(len(l.pending), func(i int) bool { return l.pending[i].position > w.indexedTo })
		l.indexed = w.indexedTo
		for _, e := range l.pending[:n] {
			l.tail[e.stream] = l.tail[e.stream][1:]
			if len(l.tail[e.stream]) == 0 {
				delete(l.tail, e.stream)
			}
		}
		l.pending = append(l.pending[:0:0], l.pending[n:]...)
	}
	for _, e := range w.entries {
		l.heads[e.stream] = e.version
		l.tail[e.stream] = append(l.tail[e.stream], e)
	}
	l.pending = append(l.pending, w.entries...)
	l.mu.Unlock()
	if w.last > 0 {
		l.head.Store(w.last)
	}
	l.commits.Add(1)
	l.appends.Add(uint64(len(w.results)))
	l.notifyMu.Lock()
	close(l.notify)
	l.notify = make(chan struct{})
	l.notifyMu.Unlock()
}

// sync is the syncer: it makes committed transactions durable, several per fsync, then
// publishes them and answers their callers, in commit order.
func (l *Log) sync() {
	defer close(l.stopped)
	for {
		var c *commitment
		select {
		case l.ready <- struct{}{}:
			c = <-l.durable // the writer answers every token it takes with one commitment
		case _, ok := <-l.durable:
			if !ok {
				return
			}
			panic("sqlitelog: commitment without a ready token")
		}
		if err := l.syncWAL(); err != nil {
			l.failed.CompareAndSwap(nil, &err)
		}
		if failed := l.failed.Load(); failed != nil {
			// After a failed fsync nothing written since the last good one can be trusted.
			for _, r := range c.reqs {
				r.done <- appendResp{err: *failed}
			}
			continue
		}
		l.publish(c.w)
		for i, r := range c.reqs {
			r.done <- c.w.results[i]
		}
	}
}

// syncWAL flushes the WAL file to disk. SQLite keeps the file (and its inode) while any
// connection is open; if it was replaced, its content was checkpointed into the synced database
// first, so syncing the current file is enough.
func (l *Log) syncWAL() error {
	if l.wal != nil {
		a, errA := l.wal.Stat()
		b, errB := os.Stat(l.walPath)
		if errA != nil || errB != nil || !os.SameFile(a, b) {
			l.wal.Close()
			l.wal = nil
		}
	}
	if l.wal == nil {
		f, err := os.OpenFile(l.walPath, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("open event log WAL: %w", err)
		}
		l.wal = f
	}
	if err := syscall.Fdatasync(int(l.wal.Fd())); err != nil {
		return fmt.Errorf("sync event log WAL: %w", err)
	}
	return nil
}

func (l *Log) waitCh() chan struct{} {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	return l.notify
}

// ReadStream implements eventstore.Store. The indexed part comes from the streams table, the
// rest from the in-memory tail; both are cut at the same snapshot, so nothing appears twice.
func (l *Log) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.RecordedEvent, error) {
	if from == 0 {
		from = 1
	}
	l.mu.RLock()
	head, known := l.heads[stream]
	indexed := l.indexed
	var tail []uint64
	for _, e := range l.tail[stream] {
		if e.version >= from && (limit <= 0 || len(tail) < limit) {
			tail = append(tail, e.position)
		}
	}
	firstTail := uint64(0)
	if t := l.tail[stream]; len(t) > 0 {
		firstTail = t[0].version
	}
	l.mu.RUnlock()
	if known && from > head {
		return nil, nil
	}
	var events []eventstore.RecordedEvent
	if firstTail == 0 || from < firstTail {
		qlimit := int64(limit)
		if limit <= 0 {
			qlimit = -1
		}
		rows, err := l.rdb.QueryContext(ctx, `SELECT `+columns+` FROM streams s JOIN events e ON e.position = s.position
			WHERE s.stream = ? AND s.version >= ? AND s.position <= ? ORDER BY s.version LIMIT ?`,
			stream, int64(from), int64(indexed), qlimit)
		if err != nil {
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		if events, err = scan(rows, 0); err != nil {
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
	}
	if len(tail) > 0 && (limit <= 0 || len(events) < limit) {
		if limit > 0 {
			tail = tail[:min(len(tail), limit-len(events))]
		}
		more, err := l.readPositions(ctx, tail)
		if err != nil {
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		events = append(events, more...)
	}
	if !known && (limit <= 0 || len(events) < limit) && len(events) > 0 {
		// We read to the end of a stream this process has not written: remember where it is,
		// unless the writer learned better meanwhile.
		last := events[len(events)-1].Version
		l.mu.Lock()
		if l.heads[stream] < last {
			l.heads[stream] = last
		}
		l.mu.Unlock()
	}
	return events, nil
}

// readPositions reads the events at the given positions, in order.
func (l *Log) readPositions(ctx context.Context, positions []uint64) ([]eventstore.RecordedEvent, error) {
	var out []eventstore.RecordedEvent
	for chunk := range slices.Chunk(positions, 256) {
		args := make([]any, len(chunk))
		for i, p := range chunk {
			args[i] = int64(p)
		}
		rows, err := l.rdb.QueryContext(ctx, `SELECT `+columns+` FROM events e WHERE e.position IN (?`+
			strings.Repeat(",?", len(chunk)-1)+`) ORDER BY e.position`, args...)
		if err != nil {
			return nil, err
		}
		evs, err := scan(rows, len(chunk))
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
	}
	return out, nil
}

// ReadAll implements eventstore.Store.
func (l *Log) ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.RecordedEvent, error) {
	if limit <= 0 {
		limit = 1000
	}
	head := l.head.Load()
	if after >= head {
		return nil, nil
	}
	// Committed but not yet synced events lie past head; they are not there for readers yet.
	rows, err := l.rdb.QueryContext(ctx, `SELECT `+columns+` FROM events e
		WHERE e.position > ? AND e.position <= ? ORDER BY e.position LIMIT ?`, int64(after), int64(head), limit)
	if err != nil {
		return nil, fmt.Errorf("read log after %d: %w", after, err)
	}
	events, err := scan(rows, limit)
	if err != nil {
		return nil, fmt.Errorf("read log after %d: %w", after, err)
	}
	return events, nil
}

func scan(rows *sql.Rows, capacity int) ([]eventstore.RecordedEvent, error) {
	defer rows.Close()
	events := make([]eventstore.RecordedEvent, 0, capacity)
	for rows.Next() {
		var (
			e       eventstore.RecordedEvent
			id      []byte
			v, p, t int64
		)
		if err := rows.Scan(&id, &e.StreamID, &v, &p, &t, &e.Type, &e.Data,
			&e.Metadata.CorrelationID, &e.Metadata.CausationID, &e.Metadata.UserID, &e.Metadata.RequestID); err != nil {
			return nil, err
		}
		var err error
		if e.ID, err = uuid.FromBytes(id); err != nil {
			return nil, fmt.Errorf("event at position %d: %w", p, err)
		}
		e.Version, e.Position, e.RecordedAt = uint64(v), uint64(p), time.Unix(0, t).UTC()
		events = append(events, e)
	}
	return events, rows.Err()
}

// Stats reports the group commits made since Open and the appends they carried.
func (l *Log) Stats() (commits, appends uint64) { return l.commits.Load(), l.appends.Load() }

// Head implements eventstore.Store.
func (l *Log) Head(context.Context) (uint64, error) { return l.head.Load(), nil }

// Subscribe implements eventstore.Store. Catching up and following live are one loop: read what
// follows the cursor, and when nothing does, wait for the next commit.
func (l *Log) Subscribe(_ context.Context, after uint64) (eventstore.Subscription, error) {
	return &subscription{log: l, cursor: after}, nil
}

type subscription struct {
	log    *Log
	cursor uint64
}

func (s *subscription) Next(ctx context.Context, max int) ([]eventstore.RecordedEvent, error) {
	for {
		// Take the wake-up channel before looking, so a commit in between is not missed.
		wake := s.log.waitCh()
		if s.log.head.Load() > s.cursor {
			events, err := s.log.ReadAll(ctx, s.cursor, max)
			if err != nil {
				return nil, err
			}
			if len(events) > 0 {
				s.cursor = events[len(events)-1].Position
				return events, nil
			}
		}
		select {
		case <-wake:
		case <-s.log.closing:
			return nil, eventstore.ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *subscription) Close() error { return nil }

var _ eventstore.Store = (*Log)(nil)
