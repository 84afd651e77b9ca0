package sqlitelog

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/edutrack/edutrack/eventstore"
)

// The embedded log is tamper-evident: each event stores a SHA-256 over its own content and the
// hash of the event before it in its stream, so changing or removing an event breaks the chain
// at that event. (Someone who rewrites every later hash of the stream too is not caught by the
// chain alone; anchoring the heads elsewhere would be the next step.)

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

// Problem is the first sign of tampering Verify found.
type Problem struct {
	Position uint64 // where the chain breaks
	Stream   string
	Version  uint64
	What     string
}

func (p Problem) String() string {
	if p.Stream == "" {
		return fmt.Sprintf("position %d: %s", p.Position, p.What)
	}
	return fmt.Sprintf("position %d (stream %s, version %d): %s", p.Position, p.Stream, p.Version, p.What)
}

// Report is what Verify found.
type Report struct {
	Events, Streams int
	// Problem is the first break, by position; nil when every chain holds.
	Problem *Problem
}

// Verify recomputes every stream's chain in the log at path and names the first event that was
// altered or removed. It only reads, so it can run beside a live server.
func Verify(ctx context.Context, path string) (Report, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		return Report{}, err
	}
	defer db.Close()
	var rep Report
	rows, err := db.QueryContext(ctx, `SELECT `+chainColumns+` FROM events ORDER BY position`)
	if err != nil {
		return rep, fmt.Errorf("read event log %s: %w", path, err)
	}
	defer rows.Close()
	type head struct {
		version uint64
		hash    []byte
	}
	heads := map[string]head{}
	expected := uint64(1)
	found := func(p Problem) {
		if rep.Problem == nil {
			rep.Problem = &p
		}
	}
	for rows.Next() {
		r, err := scanChainRow(rows)
		if err != nil {
			return rep, fmt.Errorf("read event log %s: %w", path, err)
		}
		rep.Events++
		if r.position != expected {
			found(Problem{Position: expected, What: fmt.Sprintf("events at positions %d to %d were removed", expected, r.position-1)})
		}
		expected = r.position + 1
		h := heads[r.stream]
		if r.version != h.version+1 {
			found(Problem{Position: r.position, Stream: r.stream, Version: r.version,
				What: fmt.Sprintf("follows version %d of its stream: versions in between were removed", h.version)})
		}
		if want := r.compute(h.hash); string(want) != string(r.hash) {
			found(Problem{Position: r.position, Stream: r.stream, Version: r.version, What: "was altered (its hash does not match)"})
		}
		heads[r.stream] = head{version: r.version, hash: r.hash}
	}
	if err := rows.Err(); err != nil {
		return rep, err
	}
	rep.Streams = len(heads)
	// The stream index remembers events the log no longer holds at its end.
	irows, err := db.QueryContext(ctx, `SELECT stream, version, position FROM streams ORDER BY position`)
	if err != nil {
		return rep, fmt.Errorf("read stream index of %s: %w", path, err)
	}
	defer irows.Close()
	for irows.Next() {
		var s string
		var v, p int64
		if err := irows.Scan(&s, &v, &p); err != nil {
			return rep, err
		}
		if uint64(v) > heads[s].version {
			found(Problem{Position: uint64(p), Stream: s, Version: uint64(v), What: "was removed (the stream index still lists it)"})
			break
		}
	}
	if rep.Problem != nil && rep.Problem.Position == 0 {
		return rep, errors.New("verify: a problem without a position")
	}
	return rep, irows.Err()
}
