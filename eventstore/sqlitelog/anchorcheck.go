package sqlitelog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// tailCheck is what the last anchor says of the log, and whether the events after it chain:
// the check a process makes before it serves history.
type tailCheck struct {
	last     *Anchor // nil: the log has no anchors
	head     uint64  // the log's last position
	problems []Problem
	// unresolved is a failed verification the last anchor carries.
	unresolved string
	// trusted is true when logHash is the running hash at head, from the last anchor and the
	// events after it; when it is false a writer recomputes it from the whole log.
	trusted bool
	logHash [sha256.Size]byte
	heads   []StreamHead // of the streams appended after the last anchor
}

// checkTail checks the last anchor and the events after it. Without a key it only finds
// whether there is an anchor.
func checkTail(ctx context.Context, q queryer, key []byte) (tailCheck, error) {
	var tc tailCheck
	var last sql.NullInt64
	if err := q.QueryRowContext(ctx, `SELECT MAX(position) FROM events`).Scan(&last); err != nil {
		return tc, fmt.Errorf("read event log head: %w", err)
	}
	tc.head = uint64(last.Int64)
	if ok, err := hasAnchors(ctx, q); err != nil || !ok {
		return tc, err
	}
	a, err := scanAnchor(q.QueryRowContext(ctx, `SELECT `+anchorColumns+` FROM anchors ORDER BY seq DESC LIMIT 1`))
	if err != nil {
		return tc, fmt.Errorf("read the last anchor: %w", err)
	}
	tc.last = &a
	if key == nil {
		return tc, nil
	}
	if ok, why := a.verify(key, keyID(key)); !ok {
		tc.problems = append(tc.problems, Problem{Kind: Anchors, What: fmt.Sprintf("anchor %d (the last): %s", a.Seq, why)})
		return tc, nil
	}
	tc.unresolved = a.Unresolved
	heads, err := a.heads()
	if err != nil {
		return tc, fmt.Errorf("anchor %d: %w", a.Seq, err)
	}
	trusted := true
	if tc.head < a.Head {
		trusted = false
		tc.problems = append(tc.problems, Problem{Kind: Cut, Position: tc.head + 1, What: fmt.Sprintf(
			"events after position %d were removed (anchor %d recorded the log head at %d)", tc.head, a.Seq, a.Head)})
	}
	hashes := &hashFinder{ctx: ctx, q: q}
	for _, h := range heads {
		hash, found, err := hashes.at(h.Stream, h.Version)
		switch {
		case err != nil:
			return tc, err
		case !found:
			trusted = false
			tc.problems = append(tc.problems, Problem{Kind: Cut, Stream: h.Stream, Version: h.Version, What: fmt.Sprintf(
				"anchor %d recorded this version as the stream's last, and the log no longer holds it", a.Seq)})
		case !bytes.Equal(hash, h.Hash):
			trusted = false
			tc.problems = append(tc.problems, Problem{Kind: Rewritten, Stream: h.Stream, Version: h.Version, What: fmt.Sprintf(
				"does not match anchor %d, which recorded it with another hash: the stream was rewritten and its chain recomputed", a.Seq)})
		}
	}
	if !trusted {
		return tc, nil
	}
	tc.logHash = [sha256.Size]byte(a.LogHash)
	if tc.head > a.Head {
		if a.Kind == AnchorShutdown {
			tc.problems = append(tc.problems, appendedWhileStopped(&a, tc.head, ""))
		}
		c := newChecker(a.Head, tc.logHash)
		c.before = func(r chainRow) ([]byte, bool, error) { return hashes.at(r.stream, r.version-1) }
		rows, err := q.QueryContext(ctx, `SELECT `+chainColumns+` FROM events WHERE position > ? ORDER BY position`, int64(a.Head))
		if err != nil {
			return tc, fmt.Errorf("read the events after anchor %d: %w", a.Seq, err)
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanChainRow(rows)
			if err != nil {
				return tc, fmt.Errorf("read the events after anchor %d: %w", a.Seq, err)
			}
			if err := c.add(r); err != nil {
				return tc, err
			}
		}
		if err := rows.Err(); err != nil {
			return tc, err
		}
		tc.problems = append(tc.problems, c.problems...)
		tc.logHash, tc.heads = c.logHash, c.heads()
	}
	tc.trusted = true
	return tc, nil
}

// hashFinder finds the hash of a stream's event by version: through the stream index, or among
// the events the index does not reach yet (read once, as a follower may find thousands).
type hashFinder struct {
	ctx   context.Context
	q     queryer
	byKey map[string][]byte // the hashes of the events past the index, by streamKey
}

func (f *hashFinder) at(stream string, version uint64) ([]byte, bool, error) {
	var h []byte
	err := f.q.QueryRowContext(f.ctx, `SELECT e.hash FROM streams s JOIN events e ON e.position = s.position
		WHERE s.stream = ? AND s.version = ? AND e.stream = s.stream AND e.version = s.version`, stream, int64(version)).Scan(&h)
	if err == nil {
		return h, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, false, fmt.Errorf("read version %d of %s: %w", version, stream, err)
	}
	if f.byKey == nil {
		f.byKey = map[string][]byte{}
		rows, err := f.q.QueryContext(f.ctx, `SELECT stream, version, hash FROM events
			WHERE position > (SELECT COALESCE(MAX(value), 0) FROM log_state WHERE key = 'indexed')`)
		if err != nil {
			return nil, false, fmt.Errorf("read the events past the stream index: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			var v int64
			var hash []byte
			if err := rows.Scan(&s, &v, &hash); err != nil {
				return nil, false, err
			}
			f.byKey[streamKey(s, uint64(v))] = hash
		}
		if err := rows.Err(); err != nil {
			return nil, false, err
		}
	}
	h, ok := f.byKey[streamKey(stream, version)]
	return h, ok, nil
}

func streamKey(stream string, version uint64) string { return fmt.Sprintf("%d/%s", version, stream) }

// IntegrityError is why a log failed the check at open. Its history must not be served until
// an operator has looked into it: `edutrack audit verify` names everything that is wrong, and
// Accept takes the log as it is.
type IntegrityError struct {
	Problems []Problem
	// Unresolved is a failure found at an earlier start and carried by the anchors since.
	Unresolved string
	// NoKey is set when the log has anchors but the process was given no key to check them.
	NoKey bool
}

func (e *IntegrityError) Error() string {
	var parts []string
	if e.NoKey {
		parts = append(parts, "the event log has anchors, but no anchor key was given to check them")
	}
	if len(e.Problems) > 0 {
		parts = append(parts, summary(e.Problems))
	}
	if e.Unresolved != "" {
		parts = append(parts, "unresolved since an earlier start: "+e.Unresolved)
	}
	return "the event log failed verification: " + strings.Join(parts, "; ")
}

// integrity is the check's verdict: nil, or an *IntegrityError.
func integrity(problems []Problem, unresolved string, noKey bool) error {
	if len(problems) == 0 && unresolved == "" && !noKey {
		return nil
	}
	return &IntegrityError{Problems: problems, Unresolved: unresolved, NoKey: noKey}
}

// unresolvedText is what the anchors of a run that started with a failed check carry.
func unresolvedText(problems []Problem, carried string) string {
	s := carried
	if len(problems) > 0 {
		s = fmt.Sprintf("found at start on %s: %s", time.Now().UTC().Format(time.RFC3339), summary(problems))
		if carried != "" {
			s += "; and before: " + carried
		}
	}
	if len(s) > 2000 {
		s = s[:2000] + "..."
	}
	return s
}

// startAnchoring checks what the last anchor did not cover and anchors the log as it now is:
// with a start anchor, or with an accept anchor for Accept. It runs in Open, before the writer.
func (l *Log) startAnchoring(ctx context.Context) error {
	st := l.anchor
	tc, err := checkTail(ctx, l.wconn, st.key)
	if err != nil {
		return err
	}
	problems := tc.problems
	if a := tc.last; a != nil {
		st.seq, st.head, st.mac, st.at = a.Seq, a.Head, a.MAC, a.At
	}
	heads, logHash := tc.heads, tc.logHash
	if !tc.trusted || st.accept != "" {
		// No anchor yet (a new log, or one written before anchors existed), one that does not
		// hold, or an operator's fresh start: check and hash the whole log, and record every
		// stream's head.
		c, err := scanLog(ctx, l.wconn)
		if err != nil {
			return err
		}
		problems = append(problems, c.problems...)
		heads, logHash = c.heads(), c.logHash
	}
	kind, reason := AnchorStart, ""
	if st.accept != "" {
		kind, reason = AnchorAccept, st.accept
		st.unresolved = ""
	} else {
		st.unresolved = unresolvedText(problems, tc.unresolved)
		l.integrity = integrity(problems, tc.unresolved, false)
	}
	st.logHash = logHash
	a := st.next(kind, tc.head, logHash, heads, reason)
	if err := l.writeAnchor(ctx, a); err != nil {
		return err
	}
	l.started = *a
	return nil
}

// writeAnchor commits a in a transaction of its own, syncs it and adopts it. Only Open and
// Close call it, when the writer goroutine is not running.
func (l *Log) writeAnchor(ctx context.Context, a *Anchor) error {
	tx, err := l.wconn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write anchor %d: %w", a.Seq, err)
	}
	defer tx.Rollback()
	if err := insertAnchor(ctx, tx, a); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write anchor %d: %w", a.Seq, err)
	}
	if err := l.syncWAL(); err != nil {
		return err
	}
	l.anchor.adopt(a)
	if l.anchor.anchored != nil {
		l.anchor.anchored(*a)
	}
	return nil
}

// touchedHeads are the heads of the streams committed since the last anchor, and of those in
// b, which is about to commit.
func (l *Log) touchedHeads(b *batch) []StreamHead {
	st := l.anchor
	heads := make([]StreamHead, 0, len(st.touched)+len(b.hashes))
	for s := range st.touched {
		if _, later := b.hashes[s]; !later {
			heads = append(heads, StreamHead{Stream: s, Version: l.versions[s], Hash: l.hashes[s]})
		}
	}
	for s, h := range b.hashes {
		heads = append(heads, StreamHead{Stream: s, Version: b.versions[s], Hash: h})
	}
	return heads
}

// anchorBatch adds a periodic anchor to b when one is due: Every has passed since the last
// anchor (or a tick asked for one), and there is something new to anchor.
func (l *Log) anchorBatch(b *batch) (*Anchor, error) {
	st := l.anchor
	last := b.pos - 1
	if last <= st.head || !b.tick && time.Since(st.at) < st.every {
		return nil, nil
	}
	a := st.next(AnchorPeriodic, last, b.logHash, l.touchedHeads(b), "")
	if err := insertAnchor(context.Background(), b.tx, a); err != nil {
		return nil, err
	}
	return a, nil
}

// Integrity is the verdict of the check made at Open: nil, or an *IntegrityError saying why
// the log's history must not be served as it is.
func (l *Log) Integrity() error { return l.integrity }

// Started is the anchor written at Open; zero without a key.
func (l *Log) Started() Anchor { return l.started }

// Accept anchors the log at path as it is now, with an anchor of kind accept giving reason: the
// way back after a failed verification that an operator has looked into (the key was lost, or
// the forged events were removed by hand). Later verifications still report what was wrong
// before it, as accepted, and fail on anything new. It opens the log as its writer, so EduTrack
// must be stopped.
func Accept(path string, opts Options, reason string) (Anchor, error) {
	if strings.TrimSpace(reason) == "" {
		return Anchor{}, errors.New("accept: give a reason")
	}
	if len(opts.Anchors.Key) < MinAnchorKeyLen {
		return Anchor{}, fmt.Errorf("accept: the anchor key must have at least %d bytes", MinAnchorKeyLen)
	}
	opts.Anchors.accept = reason
	l, err := Open(path, opts)
	if err != nil {
		return Anchor{}, err
	}
	a := l.Started()
	return a, l.Close()
}
