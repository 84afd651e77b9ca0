package sqlitelog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"strings"
)

// ProblemKind says what tampering a Problem is a sign of.
type ProblemKind string

const (
	// Altered: an event's content no longer matches its hash.
	Altered ProblemKind = "altered"
	// Removed: events are missing from the middle of the log or of a stream.
	Removed ProblemKind = "removed"
	// Rewritten: events were changed and their chains recomputed, so only the anchors tell.
	Rewritten ProblemKind = "rewritten"
	// Forged: events were appended while EduTrack was stopped, or by a process without the key.
	Forged ProblemKind = "forged"
	// Cut: events an anchor covered are gone from the end of the log or of a stream.
	Cut ProblemKind = "cut"
	// Anchors: anchors were deleted, replaced or forged, or made with another key.
	Anchors ProblemKind = "anchors"
)

// Problem is one sign of tampering.
type Problem struct {
	Kind ProblemKind
	// Position is where it starts in the log, Stream and Version the event there, when known.
	Position uint64
	Stream   string
	Version  uint64
	What     string
	// AcceptedBy is the accept anchor by which an operator took the log as it was, problem
	// included (see Accept); 0 when no one has.
	AcceptedBy uint64
}

func (p Problem) String() string {
	where := ""
	switch {
	case p.Stream != "" && p.Position > 0:
		where = fmt.Sprintf("position %d (stream %s, version %d): ", p.Position, p.Stream, p.Version)
	case p.Stream != "":
		where = fmt.Sprintf("stream %s, version %d: ", p.Stream, p.Version)
	}
	return string(p.Kind) + ": " + where + p.What
}

// maxProblems bounds a report: a lost key fails every anchor, but the first problems say it all.
const maxProblems = 1000

// Report is what Verify found.
type Report struct {
	Events, Streams int
	// Anchors is how many anchors the log holds, and Last the last of them (nil if none).
	Anchors int
	Last    *Anchor
	// KeyID names the key the anchors were checked with; empty when none was given, and then
	// the anchors were not checked.
	KeyID string
	// Unanchored counts the events after the last anchor: the newest of a running server, or
	// those a crash left, which the next start anchors once their chains check out.
	Unanchored int
	// Problems are the signs of tampering found, in the order found; More counts those past
	// the first maxProblems.
	Problems []Problem
	More     int
}

// Failed tells whether the log failed verification: a problem that no accept anchor covers.
func (r Report) Failed() bool {
	if r.More > 0 {
		return true
	}
	for _, p := range r.Problems {
		if p.AcceptedBy == 0 {
			return true
		}
	}
	return false
}

// VerifyOptions say what to check the anchors with.
type VerifyOptions struct {
	// Key is the anchor key; without it the anchors are counted but not checked.
	Key []byte
	// Expect is an anchor known from outside the file (the server logs each one): the log must
	// hold it, unchanged. Nothing inside the file shows that its latest anchors were deleted, or
	// that the whole file was replaced by an older copy; an anchor kept elsewhere does.
	Expect *ExpectedAnchor
}

// ExpectedAnchor names an anchor by its sequence number and its MAC, or the first bytes of it.
type ExpectedAnchor struct {
	Seq uint64
	MAC []byte
}

// Verify checks the log at path: every stream's chain, the positions and versions for gaps, the
// stream index against the log, and, with the key, every anchor: its MAC, the chain of anchors,
// the log's running hash and each stream head it recorded, and what came after a shutdown. It
// names what was altered, removed, rewritten, forged or cut. It only reads, in one snapshot, so
// it can run beside a live server.
func Verify(ctx context.Context, path string, opts VerifyOptions) (Report, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		return Report{}, err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return Report{}, fmt.Errorf("read event log %s: %w", path, err)
	}
	defer tx.Rollback()
	v := &auditor{c: newChecker(0, [sha256.Size]byte{}), key: opts.Key, expect: opts.Expect}
	if opts.Key != nil {
		v.keyID = keyID(opts.Key)
		v.rep.KeyID = fmt.Sprintf("%x", v.keyID)
	}
	anchored, err := hasAnchors(ctx, tx)
	if err != nil {
		return v.rep, err
	}
	// The anchors are read beside the events, each checked once the events it covers are.
	next := func() (*seenAnchor, error) { return nil, nil }
	if anchored {
		arows, err := tx.QueryContext(ctx, `SELECT `+anchorColumns+` FROM anchors ORDER BY seq`)
		if err != nil {
			return v.rep, fmt.Errorf("read the anchors of %s: %w", path, err)
		}
		defer arows.Close()
		next = func() (*seenAnchor, error) {
			if !arows.Next() {
				return nil, arows.Err()
			}
			a, err := scanAnchor(arows)
			if err != nil {
				return nil, fmt.Errorf("read the anchors of %s: %w", path, err)
			}
			s := &seenAnchor{a: a}
			if v.key != nil {
				s.ok, s.why = a.verify(v.key, v.keyID)
			}
			return s, nil
		}
	}
	pending, err := next()
	if err != nil {
		return v.rep, err
	}
	// An anchor is checked once every event up to its head has been; one whose MAC fails is
	// reported at once, since nothing it says can be trusted, its head included.
	settle := func(upTo uint64, end bool) error {
		for pending != nil && (end || pending.a.Head < upTo || (v.key != nil && !pending.ok)) {
			v.anchor(pending, end)
			if pending, err = next(); err != nil {
				return err
			}
		}
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+chainColumns+` FROM events ORDER BY position`)
	if err != nil {
		return v.rep, fmt.Errorf("read event log %s: %w", path, err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanChainRow(rows)
		if err != nil {
			return v.rep, fmt.Errorf("read event log %s: %w", path, err)
		}
		if err := settle(r.position, false); err != nil {
			return v.rep, err
		}
		if err := v.c.add(r); err != nil {
			return v.rep, err
		}
		v.collect()
	}
	if err := rows.Err(); err != nil {
		return v.rep, err
	}
	if err := settle(0, true); err != nil {
		return v.rep, err
	}
	v.finish()
	v.rep.Events, v.rep.Streams = v.c.events, len(v.c.streams)
	// The stream index remembers events the log no longer holds at its end.
	irows, err := tx.QueryContext(ctx, `SELECT stream, version, position FROM streams ORDER BY position`)
	if err != nil {
		return v.rep, fmt.Errorf("read stream index of %s: %w", path, err)
	}
	defer irows.Close()
	for irows.Next() {
		var s string
		var ver, p int64
		if err := irows.Scan(&s, &ver, &p); err != nil {
			return v.rep, err
		}
		if st := v.c.streams[s]; st == nil || uint64(ver) > st.version {
			v.found(Problem{Kind: Removed, Position: uint64(p), Stream: s, Version: uint64(ver),
				What: "the stream index lists it, but the log no longer holds it"})
			break
		}
	}
	return v.rep, irows.Err()
}

// seenAnchor is an anchor as Verify read it, with its MAC checked.
type seenAnchor struct {
	a   Anchor
	ok  bool
	why string // why the MAC failed
}

// auditor is Verify's state: the chains so far, and the anchors.
type auditor struct {
	c          *checker
	key, keyID []byte
	expect     *ExpectedAnchor
	rep        Report

	lastSeen    *Anchor // the last anchor read
	lastGood    *Anchor // the last one whose MAC holds
	badFrom     uint64  // a run of anchors whose MAC fails for the same reason, still open
	badTo       uint64
	badWhy      string
	expectFound bool
	cutReported bool
}

func (v *auditor) found(p Problem) {
	if len(v.rep.Problems) >= maxProblems {
		v.rep.More++
		return
	}
	v.rep.Problems = append(v.rep.Problems, p)
}

// collect moves the checker's problems into the report.
func (v *auditor) collect() {
	for _, p := range v.c.problems {
		v.found(p)
	}
	v.c.problems = v.c.problems[:0]
}

// anchor checks one anchor, once the events up to its head have been checked (or all there are,
// when end).
func (v *auditor) anchor(s *seenAnchor, end bool) {
	a := &s.a
	v.rep.Anchors++
	v.rep.Last = a
	if e := v.expect; e != nil && e.Seq == a.Seq {
		v.expectFound = true
		if !bytes.HasPrefix(a.MAC, e.MAC) {
			v.found(Problem{Kind: Anchors, What: fmt.Sprintf("anchor %d is not the one expected: its MAC begins %x, not %x (the anchors were rewritten, or this is another log)",
				a.Seq, a.MAC[:min(len(a.MAC), len(e.MAC))], e.MAC)})
		}
	}
	prev := v.lastSeen
	v.lastSeen = a
	if v.key == nil {
		return
	}
	switch {
	case prev == nil && a.Seq != 1:
		v.found(Problem{Kind: Anchors, What: fmt.Sprintf("anchors 1 to %d were deleted (the first anchor left is %d)", a.Seq-1, a.Seq)})
	case prev != nil && a.Seq != prev.Seq+1:
		v.found(Problem{Kind: Anchors, What: fmt.Sprintf("anchors %d to %d were deleted (anchor %d follows anchor %d)", prev.Seq+1, a.Seq-1, a.Seq, prev.Seq)})
	case prev != nil && !bytes.Equal(a.PrevMAC, prev.MAC) || prev == nil && len(a.PrevMAC) > 0:
		v.found(Problem{Kind: Anchors, What: fmt.Sprintf("anchor %d does not follow the anchor before it (it names another): anchors were replaced", a.Seq)})
	}
	if !s.ok {
		if v.badTo > 0 && v.badWhy == s.why && a.Seq == v.badTo+1 {
			v.badTo = a.Seq
			return
		}
		v.closeBadRun()
		v.badFrom, v.badTo, v.badWhy = a.Seq, a.Seq, s.why
		return
	}
	v.closeBadRun()
	good := v.lastGood
	v.lastGood = a
	from := uint64(1)
	if good != nil {
		from = good.Head + 1
		if a.Head < good.Head {
			v.found(Problem{Kind: Anchors, What: fmt.Sprintf("anchor %d records the log head at %d, below anchor %d's %d", a.Seq, a.Head, good.Seq, good.Head)})
			return
		}
		if good.Kind == AnchorShutdown {
			if a.Kind != AnchorStart && a.Kind != AnchorAccept {
				v.found(Problem{Kind: Anchors, What: fmt.Sprintf("anchor %d (%s) follows shutdown anchor %d with no start anchor between", a.Seq, a.Kind, good.Seq)})
			}
			if a.Head > good.Head {
				v.found(appendedWhileStopped(good, a.Head, fmt.Sprintf(", before anchor %d", a.Seq)))
			}
		}
	}
	heads, err := a.heads()
	if err != nil {
		v.found(Problem{Kind: Anchors, What: fmt.Sprintf("anchor %d: %v", a.Seq, err)})
		return
	}
	if end && v.c.last() < a.Head {
		v.cut(a, heads)
		return
	}
	if v.c.logHash != [sha256.Size]byte(a.LogHash) {
		v.found(Problem{Kind: Rewritten, Position: from, What: fmt.Sprintf(
			"the events between positions %d and %d do not match anchor %d (the log's running hash differs): events in between were rewritten, inserted or reordered",
			from, a.Head, a.Seq)})
		// From here on, compare with what the anchor says, so that a later change is found too.
		v.c.logHash = [sha256.Size]byte(a.LogHash)
	}
	for _, h := range heads {
		st := v.c.streams[h.Stream]
		switch {
		case st == nil || st.version != h.Version:
			if st == nil {
				st = &streamState{}
				v.c.streams[h.Stream] = st
			}
			if !st.reported {
				st.reported = true
				v.found(Problem{Kind: Rewritten, Stream: h.Stream, Version: h.Version, What: fmt.Sprintf(
					"anchor %d recorded this version as the stream's last at position %d, where the log now has version %d", a.Seq, a.Head, st.version)})
			}
		case !bytes.Equal(st.hash, h.Hash):
			// A changed version changes every hash after it, so all the anchors tell is that
			// the change begins after the last version that still matches.
			if !st.reported {
				st.reported = true
				from := fmt.Sprintf("version %d", h.Version)
				if st.anchored+1 < h.Version {
					from = fmt.Sprintf("a version between %d and %d", st.anchored+1, h.Version)
				}
				v.found(Problem{Kind: Rewritten, Position: st.since, Stream: h.Stream, Version: st.anchored + 1, What: fmt.Sprintf(
					"the stream differs from %s on (anchor %d recorded version %d with another hash): it was rewritten and its chain recomputed",
					from, a.Seq, h.Version)})
			}
		default:
			st.anchored, st.since = h.Version, 0
		}
	}
	if a.Kind == AnchorAccept {
		// An operator took the log as it was here: what was found before is theirs to know,
		// no longer a failure; what is found after is new.
		for i := range v.rep.Problems {
			if v.rep.Problems[i].AcceptedBy == 0 {
				v.rep.Problems[i].AcceptedBy = a.Seq
			}
		}
		for _, st := range v.c.streams {
			st.reported = false
		}
		v.cutReported = false
	}
}

// cut reports an anchor whose head lies past the end of the log.
func (v *auditor) cut(a *Anchor, heads []StreamHead) {
	if !v.cutReported {
		v.cutReported = true
		v.found(Problem{Kind: Cut, Position: v.c.last() + 1, What: fmt.Sprintf(
			"events after position %d were removed (anchor %d recorded the log head at %d)", v.c.last(), a.Seq, a.Head)})
	}
	for _, h := range heads {
		st := v.c.streams[h.Stream]
		if st == nil {
			st = &streamState{}
			v.c.streams[h.Stream] = st
		}
		if st.version < h.Version && !st.reported {
			st.reported = true
			v.found(Problem{Kind: Cut, Stream: h.Stream, Version: st.version + 1, What: fmt.Sprintf(
				"versions %d to %d were removed (anchor %d recorded version %d as the stream's last)", st.version+1, h.Version, a.Seq, h.Version)})
		}
	}
}

func (v *auditor) closeBadRun() {
	if v.badTo == 0 {
		return
	}
	which := fmt.Sprintf("anchor %d", v.badFrom)
	if v.badTo > v.badFrom {
		which = fmt.Sprintf("anchors %d to %d", v.badFrom, v.badTo)
	}
	v.found(Problem{Kind: Anchors, What: which + ": " + v.badWhy})
	v.badFrom, v.badTo, v.badWhy = 0, 0, ""
}

// finish reports what only the end of the log tells: events after a shutdown anchor, and an
// expected anchor the log does not hold.
func (v *auditor) finish() {
	v.closeBadRun()
	if g := v.lastGood; g != nil && v.c.last() > g.Head {
		if g.Kind == AnchorShutdown {
			v.found(appendedWhileStopped(g, v.c.last(), ""))
		} else {
			v.rep.Unanchored = int(v.c.last() - g.Head)
		}
	}
	if e := v.expect; e != nil && !v.expectFound {
		end := "the log has no anchors"
		if v.lastSeen != nil {
			end = fmt.Sprintf("its anchors end at anchor %d", v.lastSeen.Seq)
		}
		v.found(Problem{Kind: Anchors, What: fmt.Sprintf(
			"anchor %d, which was expected, is not in the log: %s (the later ones were deleted, or this is an older copy of the file)", e.Seq, end)})
	}
}

// appendedWhileStopped is the problem of events after shutdown anchor s, up to position to.
func appendedWhileStopped(s *Anchor, to uint64, before string) Problem {
	return Problem{Kind: Forged, Position: s.Head + 1, What: fmt.Sprintf(
		"events at positions %d to %d were appended while EduTrack was stopped, or by a process without the anchor key (after shutdown anchor %d%s, with no start anchor between)",
		s.Head+1, to, s.Seq, before)}
}

// summary is problems in one line: the first, and how many more.
func summary(problems []Problem) string {
	var b strings.Builder
	for i, p := range problems {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(problems)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}
