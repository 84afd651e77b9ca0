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
//
// Every event is chained to the one before it in its stream (chain.go), and with a key the
// writer anchors the chains with signed records of the log's state (anchor.go): Verify then names
// a rewrite, a forged append or a cut tail that recomputed chains would hide.
package sqlitelog

import (
	"database/sql"
	"os"
	"sync"
	"sync/atomic"

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
	// Anchors, with a key, anchor the log's hash chains (see anchor.go).
	Anchors AnchorOptions
}

// Log is the embedded event store. It is safe for concurrent use.
type Log struct {
	wdb, rdb *sql.DB
	wconn    *sql.Conn // the one write connection, held for the life of the log
	lock     *os.File
	stmts    stmts
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
	anchor   *anchorState      // nil without an anchor key

	// integrity is the verdict of the check at Open, and started the anchor Open wrote; both
	// are set before the writer starts and never change.
	integrity error
	started   Anchor

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

var _ eventstore.Store = (*Log)(nil)
