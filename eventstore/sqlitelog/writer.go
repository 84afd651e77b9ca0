package sqlitelog

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sort"
	"syscall"
	"time"

	"github.com/edutrack/edutrack/eventstore"
)

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
	// anchor is the periodic anchor the transaction carried, if any; it is announced once
	// durable.
	anchor *Anchor
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
	// With a key, a tick anchors what was committed since the last anchor, so that a quiet
	// spell after a few appends does not leave them unanchored until the next append.
	var tick <-chan time.Time
	if l.anchor != nil {
		t := time.NewTicker(l.anchor.every)
		defer t.Stop()
		tick = t.C
	}
	for {
		var ready chan struct{}
		if b != nil {
			ready = l.ready
		}
		select {
		case <-tick:
			if b == nil && l.nextPos-1 > l.anchor.head {
				if nb, err := l.begin(); err == nil {
					b = nb
				}
			}
			if b != nil {
				b.tick = true
			}
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
	// logHash is the log's running hash at the last event written so far (with a key only),
	// and tick asks finish to anchor.
	logHash [sha256.Size]byte
	tick    bool
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
		var err error
		if b, err = l.begin(); err != nil {
			r.done <- appendResp{err: err}
			return nil
		}
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

// begin opens the writer's next transaction.
func (l *Log) begin() (*batch, error) {
	tx, err := l.wconn.BeginTx(context.Background(), nil)
	if err != nil {
		return nil, fmt.Errorf("begin event log transaction: %w", err)
	}
	b := &batch{tx: tx, insert: tx.Stmt(l.stmts.insert), now: time.Now().UnixNano(), pos: l.nextPos,
		versions: make(map[string]uint64), hashes: make(map[string][]byte)}
	if l.anchor != nil {
		b.logHash = l.anchor.logHash
	}
	return b, nil
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
		if l.anchor != nil {
			b.logHash = logStep(b.logHash, prev)
		}
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
	var a *Anchor
	if err == nil && l.anchor != nil {
		a, err = l.anchorBatch(b)
	}
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
	if st := l.anchor; st != nil {
		st.logHash = b.logHash
		if a != nil {
			st.adopt(a)
		} else {
			for s := range b.hashes {
				st.touched[s] = struct{}{}
			}
		}
	}
	if len(b.w.entries) > 0 {
		b.w.last = b.pos - 1
	}
	l.durable <- &commitment{w: b.w, reqs: b.reqs, anchor: a}
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
		if err := b.tx.Stmt(l.stmts.position).QueryRow(stream, int64(version)).Scan(&p); err != nil {
			return nil, fmt.Errorf("find the last event of %s: %w", stream, err)
		}
		pos = uint64(p)
	}
	var h []byte
	if err := b.tx.Stmt(l.stmts.hash).QueryRow(int64(pos)).Scan(&h); err != nil {
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
	if err := tx.Stmt(l.stmts.version).QueryRow(stream).Scan(&last); err != nil {
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
		if c.anchor != nil && l.anchor.anchored != nil {
			l.anchor.anchored(*c.anchor)
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
