package sqlitelog

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"fmt"

	"github.com/edutrack/edutrack/eventstore"
)

// The embedded log is tamper-evident: each event stores a SHA-256 over its own content and the
// hash of the event before it in its stream, so changing or removing an event breaks the chain
// at that event. Someone who rewrites every later hash of the stream too is not caught by the
// chain alone: anchors (anchor.go), signed with a key kept outside the file, catch that.

// An event's hash is computed in two steps, so the single writer does only the cheap one:
// contentDigest covers what the caller sends and is computed in the caller's goroutine;
// chainHash adds what the writer assigns (position, version, time) and the previous hash.

// contentDigest hashes an event's own content. Every field is length-prefixed, so no two events
// encode alike.
func contentDigest(id []byte, stream, typ string, data []byte, m eventstore.Metadata) [sha256.Size]byte {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	field := func(p []byte) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		h.Write(p)
	}
	field(id)
	field([]byte(stream))
	field([]byte(typ))
	field(data)
	for _, s := range []string{m.CorrelationID, m.CausationID, m.UserID, m.RequestID} {
		field([]byte(s))
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// chainHash chains an event to prev, the hash of the one before it in its stream (nil for the
// first).
func chainHash(prev []byte, digest [sha256.Size]byte, position, version uint64, recordedAt int64) []byte {
	var b [1 + sha256.Size + sha256.Size + 24]byte
	i := 0
	b[i] = byte(len(prev))
	i++
	i += copy(b[i:], prev)
	i += copy(b[i:], digest[:])
	binary.BigEndian.PutUint64(b[i:], position)
	binary.BigEndian.PutUint64(b[i+8:], version)
	binary.BigEndian.PutUint64(b[i+16:], uint64(recordedAt))
	h := sha256.Sum256(b[:i+24])
	return h[:]
}

// chainRow is what hashing needs of a stored event.
type chainRow struct {
	position, version uint64
	id                []byte
	stream, typ       string
	data              []byte
	recordedAt        int64
	meta              eventstore.Metadata
	hash              []byte
}

const chainColumns = `position, event_id, stream, version, type, data, recorded_at,
	correlation_id, causation_id, user_id, request_id, hash`

func scanChainRow(rows *sql.Rows) (chainRow, error) {
	var r chainRow
	var pos, v int64
	err := rows.Scan(&pos, &r.id, &r.stream, &v, &r.typ, &r.data, &r.recordedAt,
		&r.meta.CorrelationID, &r.meta.CausationID, &r.meta.UserID, &r.meta.RequestID, &r.hash)
	r.position, r.version = uint64(pos), uint64(v)
	return r, err
}

func (r chainRow) compute(prev []byte) []byte {
	return chainHash(prev, contentDigest(r.id, r.stream, r.typ, r.data, r.meta), r.position, r.version, r.recordedAt)
}

// addHashes gives a log written before events carried hashes its chains, once.
func addHashes(ctx context.Context, conn *sql.Conn) error {
	var has int
	if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('events') WHERE name = 'hash'`).Scan(&has); err != nil {
		return fmt.Errorf("inspect event log schema: %w", err)
	}
	if has == 0 {
		if _, err := conn.ExecContext(ctx, `ALTER TABLE events ADD COLUMN hash BLOB`); err != nil {
			return fmt.Errorf("add event hashes: %w", err)
		}
	}
	var missing int
	if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM events WHERE hash IS NULL`).Scan(&missing); err != nil || missing == 0 {
		return err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT `+chainColumns+` FROM events ORDER BY position`)
	if err != nil {
		return err
	}
	heads := map[string][]byte{}
	var todo []chainRow
	for rows.Next() {
		r, err := scanChainRow(rows)
		if err != nil {
			rows.Close()
			return err
		}
		r.hash = r.compute(heads[r.stream])
		heads[r.stream] = r.hash
		todo = append(todo, r)
	}
	rows.Close()
	for _, r := range todo {
		if _, err := tx.ExecContext(ctx, `UPDATE events SET hash = ? WHERE position = ?`, r.hash, int64(r.position)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// logStep extends the log's running hash (see Anchor.LogHash) by the next event's hash.
func logStep(sum [sha256.Size]byte, eventHash []byte) [sha256.Size]byte {
	var b [2 * sha256.Size]byte
	copy(b[:sha256.Size], sum[:])
	copy(b[sha256.Size:], eventHash)
	return sha256.Sum256(b[:])
}

// streamState is what the checker knows of one stream at the point it has reached.
type streamState struct {
	version uint64
	hash    []byte
	// anchored is the latest version an anchor recorded with the hash the stream still has;
	// since is the position of the first event after it (0 until one is seen).
	anchored, since uint64
	reported        bool // a rewrite or cut of the stream was reported
}

// checker recomputes the chains of events read in position order, and the log's running hash
// over them. It starts after a position whose running hash it is given: 0 and the zero sum for
// the whole log, or an anchor's head and hash for the events after it.
type checker struct {
	streams map[string]*streamState
	next    uint64 // the position expected next
	logHash [sha256.Size]byte
	events  int
	// before gives the hash of the version before r in r's stream, for a stream the checker
	// has not seen yet: nil when it starts at the beginning of the log, where every stream
	// starts empty. found is false when the log no longer holds that version.
	before   func(r chainRow) (hash []byte, found bool, err error)
	problems []Problem
}

func newChecker(after uint64, logHash [sha256.Size]byte) *checker {
	return &checker{streams: map[string]*streamState{}, next: after + 1, logHash: logHash}
}

// last is the position of the last event checked, or the one the checker started after.
func (c *checker) last() uint64 { return c.next - 1 }

func (c *checker) add(r chainRow) error {
	c.events++
	if r.position > c.next {
		c.problems = append(c.problems, Problem{Kind: Removed, Position: c.next,
			What: fmt.Sprintf("events at positions %d to %d were removed", c.next, r.position-1)})
	}
	c.next = r.position + 1
	st := c.streams[r.stream]
	if st == nil {
		st = &streamState{}
		if c.before != nil && r.version > 1 {
			h, found, err := c.before(r)
			if err != nil {
				return err
			}
			if found {
				st.version, st.hash = r.version-1, h
			}
		}
		c.streams[r.stream] = st
	}
	if r.version != st.version+1 {
		c.problems = append(c.problems, Problem{Kind: Removed, Position: r.position, Stream: r.stream, Version: r.version,
			What: fmt.Sprintf("follows version %d of its stream: the versions in between were removed", st.version)})
	}
	if want := r.compute(st.hash); string(want) != string(r.hash) {
		c.problems = append(c.problems, Problem{Kind: Altered, Position: r.position, Stream: r.stream, Version: r.version,
			What: "its content does not match its hash"})
	}
	// The next event chains to the stored hash, so one altered event is reported once.
	st.version, st.hash = r.version, r.hash
	if st.since == 0 {
		st.since = r.position
	}
	c.logHash = logStep(c.logHash, r.hash)
	return nil
}

// heads are the streams the checker has seen, each at its last version.
func (c *checker) heads() []StreamHead {
	heads := make([]StreamHead, 0, len(c.streams))
	for s, st := range c.streams {
		heads = append(heads, StreamHead{Stream: s, Version: st.version, Hash: st.hash})
	}
	return heads
}

// scanLog checks every chain of the log from its first event, and computes its running hash.
func scanLog(ctx context.Context, q queryer) (*checker, error) {
	c := newChecker(0, [sha256.Size]byte{})
	rows, err := q.QueryContext(ctx, `SELECT `+chainColumns+` FROM events ORDER BY position`)
	if err != nil {
		return nil, fmt.Errorf("read the event log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanChainRow(rows)
		if err != nil {
			return nil, fmt.Errorf("read the event log: %w", err)
		}
		if err := c.add(r); err != nil {
			return nil, err
		}
	}
	return c, rows.Err()
}

// queryer is what reading the log needs of a connection, a transaction or a pool.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}
