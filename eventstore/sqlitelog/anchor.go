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
