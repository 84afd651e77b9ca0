package sqlitelog

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Anchors make the chains evidence against a careful forger. The chains use no secret: whoever
// can write the file can rewrite a stream and recompute its hashes, append an event that chains
// well, or cut the log's tail. An anchor is a record the writer adds to the file, signed with an
// HMAC key kept outside it: the log's head, a running hash over every event up to it (any
// rewrite changes it), the heads of the streams appended since the anchor before, and that
// anchor's MAC, so the anchors form a chain of their own. The writer anchors at open (start),
// every AnchorOptions.Every while events arrive (periodic), and at Close (shutdown). Events after
// a shutdown anchor with no start anchor after it were written while EduTrack was stopped;
// events after a periodic anchor are what a crash left, and the next start checks their chains
// and anchors them.
//
// What anchors cannot show from inside the file: that its latest anchors were deleted along with
// the events after them, or that the whole file was replaced by an older copy. The anchors the
// server logs, kept by a log pipeline, show that (VerifyOptions.Expect).

// AnchorKind says when an anchor was written.
type AnchorKind string

const (
	// AnchorStart is written when the writer opens the log, after checking what the last anchor
	// did not cover.
	AnchorStart AnchorKind = "start"
	// AnchorPeriodic is written every AnchorOptions.Every while events are appended.
	AnchorPeriodic AnchorKind = "periodic"
	// AnchorShutdown is written at Close: nothing may follow it but a start anchor.
	AnchorShutdown AnchorKind = "shutdown"
	// AnchorAccept is written by Accept, when an operator takes the log as it is after a failed
	// verification.
	AnchorAccept AnchorKind = "accept"
)

// MinAnchorKeyLen is the shortest anchor key: 32 bytes, the HMAC-SHA256 block's half.
const MinAnchorKeyLen = 32

// AnchorOptions turn anchoring on.
type AnchorOptions struct {
	// Key is the HMAC-SHA256 key, at least MinAnchorKeyLen bytes, kept outside the data
	// directory. Without it the log writes no anchors, and one that has anchors fails its check.
	Key []byte
	// Every is how often the writer anchors while events are appended (default 1s).
	Every time.Duration
	// Anchored learns of each anchor once it is durable. Logging each one gives the operator a
	// copy outside the file, which is what shows deleted anchors or an older copy of the file.
	// It runs on the log's own goroutines and must not block.
	Anchored func(Anchor)

	// accept is Accept's reason: the writer anchors the log as it is instead of starting.
	accept string
}

// Anchor is one signed record of the log's state.
type Anchor struct {
	Seq  uint64
	Kind AnchorKind
	At   time.Time
	// Head is the position of the last event it covers; LogHash is the running hash over every
	// event up to it, in position order: h(n) = SHA-256(h(n-1) || hash of event n), from 32
	// zero bytes.
	Head    uint64
	LogHash []byte
	// Unresolved is the failed verification the writer started this run with, carried by every
	// anchor of the run, and of the runs after it, until an accept anchor.
	Unresolved string
	// Reason is why an operator accepted the log (accept anchors only).
	Reason  string
	KeyID   []byte
	PrevMAC []byte
	MAC     []byte

	headsBlob []byte // the heads as signed: every stream head appended since the anchor before
}

// StreamHead is a stream's last event as an anchor recorded it.
type StreamHead struct {
	Stream  string
	Version uint64
	Hash    []byte
}

// KeyID names a key without disclosing it, so an anchor says which key made it.
func KeyID(key []byte) string { return fmt.Sprintf("%x", keyID(key)) }

func keyID(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("edutrack anchor key id"))
	return m.Sum(nil)[:8]
}

// sum is the anchor's MAC under key: over every field, each length-prefixed or fixed-size.
func (a *Anchor) sum(key []byte) []byte {
	m := hmac.New(sha256.New, key)
	var n [binary.MaxVarintLen64]byte
	field := func(p []byte) {
		m.Write(n[:binary.PutUvarint(n[:], uint64(len(p)))])
		m.Write(p)
	}
	num := func(v uint64) {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], v)
		m.Write(b[:])
	}
	field([]byte("edutrack/sqlitelog anchor v1"))
	num(a.Seq)
	field([]byte(a.Kind))
	num(uint64(a.At.UnixNano()))
	num(a.Head)
	field(a.LogHash)
	field(a.headsBlob)
	field([]byte(a.Unresolved))
	field([]byte(a.Reason))
	field(a.KeyID)
	field(a.PrevMAC)
	return m.Sum(nil)
}

// verify checks the anchor's MAC; why says how it failed.
func (a *Anchor) verify(key, id []byte) (ok bool, why string) {
	if hmac.Equal(a.MAC, a.sum(key)) {
		return true, ""
	}
	if !bytes.Equal(a.KeyID, id) {
		return false, fmt.Sprintf("made with another key (id %x), not this one (id %x): give the key that made it, or it was forged", a.KeyID, id)
	}
	return false, fmt.Sprintf("its MAC does not match under this key (id %x): forged or altered", id)
}

// Heads are the stream heads the anchor recorded.
func (a *Anchor) Heads() ([]StreamHead, error) { return a.heads() }

func (a *Anchor) heads() ([]StreamHead, error) {
	b := a.headsBlob
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errors.New("its stream heads are malformed")
	}
	b = b[k:]
	heads := make([]StreamHead, 0, n)
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return nil, errors.New("its stream heads are malformed")
		}
		stream := string(b[k : k+int(l)])
		b = b[k+int(l):]
		v, k := binary.Uvarint(b)
		if k <= 0 || len(b)-k < sha256.Size {
			return nil, errors.New("its stream heads are malformed")
		}
		heads = append(heads, StreamHead{Stream: stream, Version: v, Hash: slices.Clone(b[k : k+sha256.Size])})
		b = b[k+sha256.Size:]
	}
	return heads, nil
}

// encodeHeads sorts heads by stream and encodes them: a count, then each stream's name,
// version and hash.
func encodeHeads(heads []StreamHead) []byte {
	slices.SortFunc(heads, func(a, b StreamHead) int { return strings.Compare(a.Stream, b.Stream) })
	b := binary.AppendUvarint(nil, uint64(len(heads)))
	for _, h := range heads {
		b = binary.AppendUvarint(b, uint64(len(h.Stream)))
		b = append(b, h.Stream...)
		b = binary.AppendUvarint(b, h.Version)
		b = append(b, h.Hash...)
	}
	return b
}

const anchorColumns = `seq, kind, at, head, log_hash, heads, unresolved, reason, key_id, prev_mac, mac`

type scanner interface{ Scan(dest ...any) error }

func scanAnchor(s scanner) (Anchor, error) {
	var a Anchor
	var seq, at, head int64
	var kind string
	err := s.Scan(&seq, &kind, &at, &head, &a.LogHash, &a.headsBlob, &a.Unresolved, &a.Reason, &a.KeyID, &a.PrevMAC, &a.MAC)
	a.Seq, a.Kind, a.At, a.Head = uint64(seq), AnchorKind(kind), time.Unix(0, at).UTC(), uint64(head)
	if err == nil && len(a.LogHash) != sha256.Size {
		// Only a forger writes one so; its MAC fails, but nothing may index past its end.
		a.LogHash = make([]byte, sha256.Size)
	}
	return a, err
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func insertAnchor(ctx context.Context, x execer, a *Anchor) error {
	// The first anchor follows none; a nil blob would be stored as NULL.
	prev := append([]byte{}, a.PrevMAC...)
	_, err := x.ExecContext(ctx, `INSERT INTO anchors (`+anchorColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		int64(a.Seq), string(a.Kind), a.At.UnixNano(), int64(a.Head), a.LogHash, a.headsBlob, a.Unresolved, a.Reason,
		a.KeyID, prev, a.MAC)
	if err != nil {
		return fmt.Errorf("write anchor %d: %w", a.Seq, err)
	}
	return nil
}

// hasAnchors tells whether the log has an anchors table with anything in it (a log written
// before anchors existed has no table, and a follower cannot create one).
func hasAnchors(ctx context.Context, q queryer) (bool, error) {
	var tables int
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'anchors'`).Scan(&tables); err != nil {
		return false, fmt.Errorf("inspect event log schema: %w", err)
	}
	if tables == 0 {
		return false, nil
	}
	var exists int
	if err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM anchors)`).Scan(&exists); err != nil {
		return false, fmt.Errorf("read anchors: %w", err)
	}
	return exists == 1, nil
}

// anchorState is the writer's side of anchoring: the key, and where the last anchor left the
// log. Its fields are the writer goroutine's, and Open's and Close's when it is not running.
type anchorState struct {
	key, keyID []byte
	every      time.Duration
	anchored   func(Anchor)
	accept     string

	logHash    [sha256.Size]byte // the running hash at the last committed position
	seq, head  uint64            // the last anchor's
	mac        []byte
	at         time.Time
	unresolved string
	// touched are the streams committed since the last anchor, whose heads the next one records.
	touched map[string]struct{}
}

func newAnchorState(o AnchorOptions) *anchorState {
	if o.Every <= 0 {
		o.Every = time.Second
	}
	return &anchorState{key: o.Key, keyID: keyID(o.Key), every: o.Every, anchored: o.Anchored, accept: o.accept,
		touched: map[string]struct{}{}}
}

// next is the anchor that follows the last one.
func (st *anchorState) next(kind AnchorKind, head uint64, logHash [sha256.Size]byte, heads []StreamHead, reason string) *Anchor {
	a := &Anchor{Seq: st.seq + 1, Kind: kind, At: time.Unix(0, time.Now().UnixNano()).UTC(), Head: head,
		LogHash: slices.Clone(logHash[:]), Unresolved: st.unresolved, Reason: reason, KeyID: st.keyID, PrevMAC: st.mac,
		headsBlob: encodeHeads(heads)}
	a.MAC = a.sum(st.key)
	return a
}

// adopt makes a committed anchor the last one.
func (st *anchorState) adopt(a *Anchor) {
	st.seq, st.head, st.mac, st.at = a.Seq, a.Head, a.MAC, a.At
	clear(st.touched)
}

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
