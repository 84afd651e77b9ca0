package sqlitelog_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/edutrack/edutrack/eventstore"
	"github.com/edutrack/edutrack/eventstore/eventstoretest"
	"github.com/edutrack/edutrack/eventstore/sqlitelog"
)

var testAnchorKey = []byte("an-anchor-key-for-tests-only-32-bytes-or-more")

// anchorLog records the anchors a log announces.
type anchorLog struct {
	mu      sync.Mutex
	anchors []sqlitelog.Anchor
}

func (r *anchorLog) add(a sqlitelog.Anchor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.anchors = append(r.anchors, a)
}

func (r *anchorLog) all() []sqlitelog.Anchor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sqlitelog.Anchor(nil), r.anchors...)
}

func anchoredOptions(rec *anchorLog, every time.Duration) sqlitelog.Options {
	return sqlitelog.Options{IndexBatch: 4, Anchors: sqlitelog.AnchorOptions{Key: testAnchorKey, Every: every, Anchored: rec.add}}
}

func appendOne(t *testing.T, l *sqlitelog.Log, stream string, after uint64) {
	t.Helper()
	ev := eventstore.EventData{ID: uuid.New(), Type: "test.happened.v1", Data: []byte(fmt.Sprintf(`{"n":%d}`, after+1)),
		Metadata: eventstore.Metadata{UserID: "u1"}}
	if _, err := l.Append(context.Background(), stream, eventstore.Exact(after), []eventstore.EventData{ev}); err != nil {
		t.Fatal(err)
	}
}

// anchoredLog writes what chainedLog writes (three streams of five events, interleaved, over two
// runs: positions 1 to 9, then 10 to 15) with the anchor key, anchoring as often as it can, and
// returns its path and the anchors it announced.
func anchoredLog(t *testing.T) (string, *anchorLog) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.db")
	rec := &anchorLog{}
	for round := range 2 {
		l, err := sqlitelog.Open(path, anchoredOptions(rec, time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if round == 0 && i >= 3 || round == 1 && i < 3 {
				continue
			}
			for s := range 3 {
				appendOne(t, l, fmt.Sprintf("s-%d", s), uint64(i))
			}
			time.Sleep(2 * time.Millisecond) // so that a periodic anchor falls between
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return path, rec
}

func verify(t *testing.T, path string, opts sqlitelog.VerifyOptions) sqlitelog.Report {
	t.Helper()
	rep, err := sqlitelog.Verify(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// hasProblem tells whether rep names a problem of kind at position in stream (either empty for
// any) whose text says what.
func hasProblem(rep sqlitelog.Report, kind sqlitelog.ProblemKind, position uint64, stream, what string) bool {
	for _, p := range rep.Problems {
		if p.Kind == kind && (position == 0 || p.Position == position) && (stream == "" || p.Stream == stream) && strings.Contains(p.String(), what) {
			return true
		}
	}
	return false
}

func problems(rep sqlitelog.Report) string {
	var lines []string
	for _, p := range rep.Problems {
		lines = append(lines, "\n  "+p.String())
	}
	return strings.Join(lines, "")
}

// integrityProblems is the *IntegrityError err must be.
func integrityProblems(t *testing.T, err error) *sqlitelog.IntegrityError {
	t.Helper()
	var ie *sqlitelog.IntegrityError
	if !errors.As(err, &ie) {
		t.Fatalf("integrity = %v, want an *IntegrityError", err)
	}
	return ie
}

func TestAnchors(t *testing.T) {
	t.Run("anchors_at_start,_while_appending_and_at_close", func(t *testing.T) {
		path, rec := anchoredLog(t)
		anchors := rec.all()
		kinds := map[sqlitelog.AnchorKind]int{}
		for i, a := range anchors {
			kinds[a.Kind]++
			if a.Seq != uint64(i+1) {
				t.Errorf("anchor %d announced as the %d-th", a.Seq, i+1)
			}
		}
		first, last := anchors[0], anchors[len(anchors)-1]
		if first.Kind != sqlitelog.AnchorStart || first.Head != 0 || last.Kind != sqlitelog.AnchorShutdown || last.Head != 15 ||
			kinds[sqlitelog.AnchorStart] != 2 || kinds[sqlitelog.AnchorShutdown] != 2 || kinds[sqlitelog.AnchorPeriodic] == 0 {
			t.Fatalf("anchors %+v: want a start and a shutdown anchor per run, periodic ones between, the last at head 15", kinds)
		}
		rep := verify(t, path, sqlitelog.VerifyOptions{Key: testAnchorKey})
		if rep.Failed() || rep.Events != 15 || rep.Anchors != len(anchors) || rep.Last == nil || rep.Last.Seq != last.Seq || rep.Unanchored != 0 {
			t.Fatalf("verify = %+v%s; want %d anchors, the last %d, and no problem", rep, problems(rep), len(anchors), last.Seq)
		}
	})
	t.Run("anchors_what_was_appended_before_a_quiet_spell", func(t *testing.T) {
		rec := &anchorLog{}
		l, err := sqlitelog.Open(filepath.Join(t.TempDir(), "events.db"), anchoredOptions(rec, 20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		appendOne(t, l, "s", 0)
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			all := rec.all()
			if a := all[len(all)-1]; a.Kind == sqlitelog.AnchorPeriodic && a.Head == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no periodic anchor of position 1 within 5s: %+v", all)
			}
		}
	})
	t.Run("anchors_a_log_written_before_anchors,_as_it_is", func(t *testing.T) {
		path := chainedLog(t)
		rec := &anchorLog{}
		l, err := sqlitelog.Open(path, anchoredOptions(rec, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Integrity(); err != nil {
			t.Errorf("integrity: %v", err)
		}
		s := l.Started()
		heads, err := s.Heads()
		if err != nil || s.Seq != 1 || s.Head != 15 || len(heads) != 3 {
			t.Errorf("start anchor %+v with heads %+v (%v): want anchor 1 at head 15 with every stream's head", s, heads, err)
		}
		l.Close()
		if rep := verify(t, path, sqlitelog.VerifyOptions{Key: testAnchorKey}); rep.Failed() {
			t.Errorf("verify:%s", problems(rep))
		}
	})
	t.Run("refuses_a_short_key", func(t *testing.T) {
		_, err := sqlitelog.Open(filepath.Join(t.TempDir(), "events.db"), sqlitelog.Options{Anchors: sqlitelog.AnchorOptions{Key: []byte("short")}})
		if err == nil || !strings.Contains(err.Error(), "at least 32") {
			t.Errorf("open with a 5-byte key: %v, want it refused", err)
		}
	})
}

// Each forgery here passes the chains, which is all the log had before anchors: the test checks
// that first, then that the anchors name it.
func TestAnchorsCatchForgeries(t *testing.T) {
	chainsPass := func(t *testing.T, path string) {
		t.Helper()
		if rep := verify(t, path, sqlitelog.VerifyOptions{}); rep.Failed() {
			t.Fatalf("the chains alone caught the forgery:%s", problems(rep))
		}
	}
	key := sqlitelog.VerifyOptions{Key: testAnchorKey}

	t.Run("names_a_stream_rewritten_with_its_chain_recomputed", func(t *testing.T) {
		path, _ := anchoredLog(t)
		tamper(t, path, `UPDATE events SET data = '{"n":"forged"}' WHERE stream = 's-1'`)
		sqlitelog.Rechain(t, path)
		chainsPass(t, path)
		rep := verify(t, path, key)
		// s-1's first event is at position 2, and an anchor recorded its first version.
		if !hasProblem(rep, sqlitelog.Rewritten, 2, "s-1", "the stream differs from version 1 on") {
			t.Errorf("verify:%s\nwant stream s-1 named as rewritten from version 1", problems(rep))
		}
		if p := rep.Problems[0]; p.Kind != sqlitelog.Rewritten || p.Stream != "" || p.Position > 2 || !strings.Contains(p.What, "do not match anchor") {
			t.Errorf("verify:%s\nwant the log's running hash to differ first in an anchor covering position 2", problems(rep))
		}
	})
	t.Run("names_events_appended_with_a_valid_chain_after_a_clean_shutdown", func(t *testing.T) {
		path, _ := anchoredLog(t)
		tamper(t, path, `INSERT INTO events (position, event_id, stream, version, type, data, recorded_at, user_id, hash)
			SELECT 16, randomblob(16), stream, 6, type, '{"n":6}', recorded_at + 1000, user_id, hash FROM events WHERE position = 13`)
		sqlitelog.Rechain(t, path)
		chainsPass(t, path)
		rep := verify(t, path, key)
		if !hasProblem(rep, sqlitelog.Forged, 16, "", "events at positions 16 to 16 were appended while EduTrack was stopped") {
			t.Errorf("verify:%s\nwant position 16 named as appended while stopped", problems(rep))
		}
		// And a server refuses it at start, writer and follower alike.
		l, err := sqlitelog.Open(path, anchoredOptions(&anchorLog{}, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if ie := integrityProblems(t, l.Integrity()); !strings.Contains(ie.Error(), "forged: events at positions 16 to 16") {
			t.Errorf("writer's integrity: %v", ie)
		}
		f, err := sqlitelog.OpenFollower(path, sqlitelog.FollowerOptions{AnchorKey: testAnchorKey})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		// The writer's start anchor now follows the shutdown; it carries what it found.
		if ie := integrityProblems(t, f.Integrity()); !strings.Contains(ie.Unresolved, "positions 16 to 16") {
			t.Errorf("follower's integrity: %v", ie)
		}
	})
	t.Run("names_a_cut_tail", func(t *testing.T) {
		path, _ := anchoredLog(t)
		tamper(t, path, `DELETE FROM events WHERE position > 12`)
		tamper(t, path, `DELETE FROM streams WHERE position > 12`)
		tamper(t, path, `UPDATE log_state SET value = MIN(value, 12) WHERE key = 'indexed'`)
		chainsPass(t, path)
		rep := verify(t, path, key)
		if !hasProblem(rep, sqlitelog.Cut, 13, "", "events after position 12 were removed (anchor") ||
			!hasProblem(rep, sqlitelog.Cut, 0, "s-0", "versions 5 to 5 were removed") {
			t.Errorf("verify:%s\nwant the events after position 12 named as cut, and version 5 of s-0", problems(rep))
		}
		l, err := sqlitelog.Open(path, anchoredOptions(&anchorLog{}, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if ie := integrityProblems(t, l.Integrity()); !strings.Contains(ie.Error(), "cut: events after position 12 were removed") {
			t.Errorf("writer's integrity: %v", ie)
		}
	})
	t.Run("names_deleted_anchors", func(t *testing.T) {
		path, rec := anchoredLog(t)
		second := secondStart(t, rec)
		tamper(t, path, `DELETE FROM anchors WHERE seq = ?`, second.Seq)
		rep := verify(t, path, key)
		want := fmt.Sprintf("anchors %d to %d were deleted", second.Seq, second.Seq)
		if !hasProblem(rep, sqlitelog.Anchors, 0, "", want) {
			t.Errorf("verify:%s\nwant %q", problems(rep), want)
		}
	})
	t.Run("names_the_latest_anchors_deleted_only_against_one_kept_elsewhere", func(t *testing.T) {
		path, rec := anchoredLog(t)
		// The careful forger takes the log back to the end of the first run: the second run's
		// events and anchors go, and the index forgets them. Nothing in the file tells.
		second := secondStart(t, rec)
		tamper(t, path, `DELETE FROM anchors WHERE seq >= ?`, second.Seq)
		tamper(t, path, `DELETE FROM events WHERE position > ?`, second.Head)
		tamper(t, path, `DELETE FROM streams WHERE position > ?`, second.Head)
		tamper(t, path, `UPDATE log_state SET value = MIN(value, ?) WHERE key = 'indexed'`, second.Head)
		if rep := verify(t, path, key); rep.Failed() {
			t.Fatalf("verify found what the file cannot show:%s", problems(rep))
		}
		all := rec.all()
		last := all[len(all)-1]
		rep := verify(t, path, sqlitelog.VerifyOptions{Key: testAnchorKey, Expect: &sqlitelog.ExpectedAnchor{Seq: last.Seq, MAC: last.MAC}})
		want := fmt.Sprintf("anchor %d, which was expected, is not in the log: its anchors end at anchor %d", last.Seq, second.Seq-1)
		if !hasProblem(rep, sqlitelog.Anchors, 0, "", want) {
			t.Errorf("verify:%s\nwant %q", problems(rep), want)
		}
	})
	t.Run("names_anchors_changed_without_the_key", func(t *testing.T) {
		path, _ := anchoredLog(t)
		tamper(t, path, `UPDATE anchors SET head = head + 1 WHERE seq = 2`)
		rep := verify(t, path, key)
		if !hasProblem(rep, sqlitelog.Anchors, 0, "", "anchor 2: its MAC does not match under this key") {
			t.Errorf("verify:%s\nwant anchor 2 named as forged", problems(rep))
		}
	})
	t.Run("names_anchors_made_with_another_key", func(t *testing.T) {
		path, rec := anchoredLog(t)
		rep := verify(t, path, sqlitelog.VerifyOptions{Key: []byte("another-anchor-key-for-tests-only-32-bytes")})
		want := fmt.Sprintf("anchors 1 to %d: made with another key", len(rec.all()))
		if !hasProblem(rep, sqlitelog.Anchors, 0, "", want) {
			t.Errorf("verify:%s\nwant %q", problems(rep), want)
		}
	})
}

// A follower can outlive its writer: it notices events appended after the writer's shutdown,
// and what the writer's next start found, without being reopened.
func TestFollowerRechecksTheLatestAnchor(t *testing.T) {
	path, _ := anchoredLog(t)
	f, err := sqlitelog.OpenFollower(path, sqlitelog.FollowerOptions{AnchorKey: testAnchorKey, Recheck: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Integrity(); err != nil {
		t.Fatalf("integrity of an intact log: %v", err)
	}
	tamper(t, path, `INSERT INTO events (position, event_id, stream, version, type, data, recorded_at, user_id, hash)
		SELECT 16, randomblob(16), stream, 6, type, '{"n":6}', recorded_at + 1000, user_id, hash FROM events WHERE position = 13`)
	sqlitelog.Rechain(t, path)
	time.Sleep(2 * time.Millisecond)
	if ie := integrityProblems(t, f.Integrity()); !strings.Contains(ie.Error(), "forged: events at positions 16 to 16") {
		t.Errorf("integrity after an append past the shutdown: %v", ie)
	}
	// The writer starts, finds the forged event and records it; the follower still refuses.
	l, err := sqlitelog.Open(path, anchoredOptions(&anchorLog{}, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	time.Sleep(2 * time.Millisecond)
	if ie := integrityProblems(t, f.Integrity()); !strings.Contains(ie.Unresolved, "positions 16 to 16") {
		t.Errorf("integrity once the writer has started: %v", ie)
	}
}

// secondStart is the start anchor of anchoredLog's second run.
func secondStart(t *testing.T, rec *anchorLog) sqlitelog.Anchor {
	t.Helper()
	for _, a := range rec.all() {
		if a.Kind == sqlitelog.AnchorStart && a.Seq > 1 {
			return a
		}
	}
	t.Fatal("no second start anchor")
	return sqlitelog.Anchor{}
}

// crashedLog is a log whose writer stopped without its shutdown anchor after appending positions
// 4 and 5: a crash, as the file shows it.
func crashedLog(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.db")
	rec := &anchorLog{}
	for run, streams := range [][]string{{"a", "b", "a"}, {"b", "c"}} {
		l, err := sqlitelog.Open(path, anchoredOptions(rec, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		versions := map[string]uint64{"a": 0, "b": 0}
		if run == 1 {
			versions = map[string]uint64{"a": 2, "b": 1}
		}
		for _, s := range streams {
			appendOne(t, l, s, versions[s])
			versions[s]++
		}
		l.Close()
	}
	all := rec.all()
	tamper(t, path, `DELETE FROM anchors WHERE seq = ?`, all[len(all)-1].Seq)
	return path
}

func TestAnchorsAtOpen(t *testing.T) {
	t.Run("anchors_what_a_crash_left_once_its_chains_check_out", func(t *testing.T) {
		path := crashedLog(t)
		l, err := sqlitelog.Open(path, anchoredOptions(&anchorLog{}, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Integrity(); err != nil {
			t.Errorf("integrity after a crash: %v", err)
		}
		if s := l.Started(); s.Head != 5 || s.Unresolved != "" {
			t.Errorf("start anchor %+v, want it to cover position 5 with nothing unresolved", s)
		}
		l.Close()
		if rep := verify(t, path, sqlitelog.VerifyOptions{Key: testAnchorKey}); rep.Failed() {
			t.Errorf("verify:%s", problems(rep))
		}
	})
	t.Run("refuses_what_a_crash_left_when_its_chain_breaks", func(t *testing.T) {
		path := crashedLog(t)
		tamper(t, path, `UPDATE events SET data = '{"n":99}' WHERE position = 5`)
		l, err := sqlitelog.Open(path, anchoredOptions(&anchorLog{}, time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if ie := integrityProblems(t, l.Integrity()); !strings.Contains(ie.Error(), "altered: position 5 (stream c, version 1)") {
			t.Errorf("integrity: %v", ie)
		}
	})
	t.Run("keeps_failing_until_an_operator_accepts_the_log", func(t *testing.T) {
		path, _ := anchoredLog(t)
		tamper(t, path, `INSERT INTO events (position, event_id, stream, version, type, data, recorded_at, user_id, hash)
			SELECT 16, randomblob(16), stream, 6, type, '{"n":6}', recorded_at + 1000, user_id, hash FROM events WHERE position = 13`)
		sqlitelog.Rechain(t, path)
		opts := anchoredOptions(&anchorLog{}, time.Hour)
		l, err := sqlitelog.Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		integrityProblems(t, l.Integrity())
		// Appends go on, anchored, while an operator looks into it.
		appendOne(t, l, "s-2", 5)
		l.Close()
		l, err = sqlitelog.Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		if ie := integrityProblems(t, l.Integrity()); !strings.Contains(ie.Unresolved, "positions 16 to 16") {
			t.Errorf("integrity at the next start: %v, want the first failure carried", ie)
		}
		l.Close()

		if _, err := sqlitelog.Accept(path, opts, ""); err == nil {
			t.Error("accepted without a reason")
		}
		a, err := sqlitelog.Accept(path, opts, "position 16 was a test of the alarm")
		if err != nil {
			t.Fatal(err)
		}
		if a.Kind != sqlitelog.AnchorAccept || a.Head != 17 || a.Reason != "position 16 was a test of the alarm" {
			t.Errorf("accept anchor %+v", a)
		}
		l, err = sqlitelog.Open(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Integrity(); err != nil {
			t.Errorf("integrity after accepting: %v", err)
		}
		l.Close()
		rep := verify(t, path, sqlitelog.VerifyOptions{Key: testAnchorKey})
		if rep.Failed() || !hasProblem(rep, sqlitelog.Forged, 16, "", "positions 16 to 16") || rep.Problems[0].AcceptedBy != a.Seq {
			t.Errorf("verify after accepting:%s\nwant the forged event still named, accepted by anchor %d", problems(rep), a.Seq)
		}
	})
	t.Run("fails_without_the_key_when_the_log_has_anchors", func(t *testing.T) {
		path, _ := anchoredLog(t)
		l, err := sqlitelog.Open(path, sqlitelog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if ie := integrityProblems(t, l.Integrity()); !ie.NoKey {
			t.Errorf("writer's integrity without the key: %v", ie)
		}
		f, err := sqlitelog.OpenFollower(path, sqlitelog.FollowerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if ie := integrityProblems(t, f.Integrity()); !ie.NoKey {
			t.Errorf("follower's integrity without the key: %v", ie)
		}
	})
}

// The contract suite, anchoring every millisecond, with every log it leaves checked.
func TestContractWithAnchors(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) eventstoretest.Opener {
		path := filepath.Join(t.TempDir(), "events.db")
		// Registered first, so it runs last: once the suite has closed the log.
		t.Cleanup(func() {
			if rep := verify(t, path, sqlitelog.VerifyOptions{Key: testAnchorKey}); rep.Failed() || rep.Anchors == 0 {
				t.Errorf("the suite's log: %d anchors%s", rep.Anchors, problems(rep))
			}
		})
		return func() (eventstore.Store, error) {
			return sqlitelog.Open(path, sqlitelog.Options{IndexBatch: 3, MaxBatchEvents: 5,
				Anchors: sqlitelog.AnchorOptions{Key: testAnchorKey, Every: time.Millisecond}})
		}
	})
}
